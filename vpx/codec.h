// The C side of package vpx: a decoder and an encoder whose libvpx state
// lives in C memory, so Go never hands libvpx a pointer it could keep.
#ifndef INVIGIL_VPX_CODEC_H
#define INVIGIL_VPX_CODEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct inv_decoder inv_decoder;
typedef struct inv_encoder inv_encoder;

// Error text of the last failed call goes into errbuf (NUL-terminated).
enum { INV_ERRBUF = 256 };

inv_decoder *inv_dec_new(int threads, char *errbuf);
void inv_dec_free(inv_decoder *d);
// inv_dec_decode decodes one compressed frame (copied into a padded C
// buffer first). It returns 0 and sets *shown when a picture came out, or -1
// with errbuf filled.
int inv_dec_decode(inv_decoder *d, const uint8_t *data, size_t size, int *shown, char *errbuf);
// Size of the last picture (0 when none).
void inv_dec_size(const inv_decoder *d, int *w, int *h);
// inv_dec_copy_i420 writes the last picture, cropped to w×h (both even,
// at most its size), as packed I420 into dst: w*h luma bytes, then
// (w/2)*(h/2) U, then V. It returns -1 when there is no picture or it is
// smaller than w×h.
int inv_dec_copy_i420(const inv_decoder *d, uint8_t *dst, int w, int h);
// inv_dec_copy_planes copies the whole last picture into packed planes:
// y gets w*h bytes, u and v ((w+1)/2)*((h+1)/2) each.
int inv_dec_copy_planes(const inv_decoder *d, uint8_t *y, uint8_t *u, uint8_t *v);

typedef struct {
	int width, height;
	int timebase_den;      // pts units per second
	int bitrate_kbps;
	int keyframe_interval; // frames; 0 for libvpx's default
	int threads;
	int cpu_used;
	// temporal_layers is 1 (none) or 3: L1T3, WebRTC's three-layer pattern
	// (see codec.c).
	int temporal_layers;
} inv_enc_config;

inv_encoder *inv_enc_new(const inv_enc_config *cfg, char *errbuf);
void inv_enc_free(inv_encoder *e);
// inv_enc_encode encodes one packed I420 picture of the configured size
// (planes at y, u, v with strides w, w/2, w/2).
int inv_enc_encode(inv_encoder *e, const uint8_t *y, const uint8_t *u, const uint8_t *v,
                   int64_t pts, unsigned long duration, int force_keyframe, char *errbuf);
// inv_enc_next returns the next compressed frame of the last encode (1), or
// 0 when there is none left. The data stays valid until the next encode.
// tid is the frame's temporal layer (0 without layers), sync whether it
// depends only on base-layer frames, droppable whether no frame
// references it.
int inv_enc_next(inv_encoder *e, const uint8_t **data, size_t *size, int *keyframe, int *tid, int *sync,
                 int *droppable);

#endif
