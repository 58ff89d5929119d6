// A minimal C interface to cv::dnn::Net that turns OpenCV's C++ exceptions
// into error strings. gocv v0.31.0 calls OpenCV without a try/catch, so a
// model the importer rejects, or an input blob of the wrong shape, aborts the
// whole server; going through this shim they become Go errors.
#ifndef INVIGIL_DNN_SHIM_H
#define INVIGIL_DNN_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct InvigilNet InvigilNet;

// invigil_net_read_onnx imports an ONNX model held in memory. On failure it
// returns NULL and sets *err to a malloc'd message the caller frees.
InvigilNet* invigil_net_read_onnx(const char* data, size_t len, char** err);

void invigil_net_close(InvigilNet* net);

// invigil_net_output_count and invigil_net_output_name list the net's
// unconnected output layers in the order invigil_net_forward returns them.
int invigil_net_output_count(InvigilNet* net);
const char* invigil_net_output_name(InvigilNet* net, int i);

// invigil_net_forward feeds blob (a cv::Mat*, as held by gocv.Mat) and runs
// the net to every output. Returns 0 on success; otherwise -1 and *err.
// Outputs stay valid until the next forward or close.
int invigil_net_forward(InvigilNet* net, void* blob, char** err);

// invigil_net_output reports output i of the last forward: its dimensions
// (up to max_dims written to dims; the return value is the true count, or -1
// when the output is not a continuous CV_32F blob) and its data.
int invigil_net_output(InvigilNet* net, int i, int* dims, int max_dims, const float** data, size_t* total);

// invigil_set_num_threads sets OpenCV's (process-wide) thread pool size;
// 0 disables threading, as cv::setNumThreads does.
void invigil_set_num_threads(int n);
int invigil_get_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif
