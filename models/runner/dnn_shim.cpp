#include "dnn_shim.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

struct InvigilNet {
    cv::dnn::Net net;
    std::vector<cv::String> outNames;
    std::vector<cv::Mat> outs;
};

static void setErr(char** err, const char* msg) {
    if (err == NULL) return;
    size_t n = std::strlen(msg);
    char* s = static_cast<char*>(std::malloc(n + 1));
    if (s == NULL) return;
    std::memcpy(s, msg, n + 1);
    *err = s;
}

extern "C" {

InvigilNet* invigil_net_read_onnx(const char* data, size_t len, char** err) {
    InvigilNet* n = NULL;
    try {
        n = new InvigilNet();
        n->net = cv::dnn::readNetFromONNX(data, len);
        if (n->net.empty()) {
            delete n;
            setErr(err, "the ONNX importer returned an empty network");
            return NULL;
        }
        n->outNames = n->net.getUnconnectedOutLayersNames();
        return n;
    } catch (const cv::Exception& e) {
        delete n;
        setErr(err, e.what());
    } catch (const std::exception& e) {
        delete n;
        setErr(err, e.what());
    } catch (...) {
        delete n;
        setErr(err, "unknown C++ exception");
    }
    return NULL;
}

void invigil_net_close(InvigilNet* net) {
    delete net;
}

int invigil_net_output_count(InvigilNet* net) {
    return static_cast<int>(net->outNames.size());
}

const char* invigil_net_output_name(InvigilNet* net, int i) {
    return net->outNames[i].c_str();
}

int invigil_net_forward(InvigilNet* net, void* blob, char** err) {
    try {
        net->net.setInput(*static_cast<cv::Mat*>(blob));
        net->net.forward(net->outs, net->outNames);
        return 0;
    } catch (const cv::Exception& e) {
        setErr(err, e.what());
    } catch (const std::exception& e) {
        setErr(err, e.what());
    } catch (...) {
        setErr(err, "unknown C++ exception");
    }
    net->outs.clear();
    return -1;
}

int invigil_net_output(InvigilNet* net, int i, int* dims, int max_dims, const float** data, size_t* total) {
    if (i < 0 || static_cast<size_t>(i) >= net->outs.size()) return -1;
    const cv::Mat& m = net->outs[i];
    if (m.type() != CV_32F || !m.isContinuous()) return -1;
    for (int d = 0; d < m.dims && d < max_dims; d++) dims[d] = m.size[d];
    *data = m.ptr<float>();
    *total = m.total();
    return m.dims;
}

}

extern "C" void invigil_set_num_threads(int n) { cv::setNumThreads(n); }

extern "C" int invigil_get_num_threads() { return cv::getNumThreads(); }
