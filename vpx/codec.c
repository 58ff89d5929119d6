#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vpx/vp8cx.h>
#include <vpx/vp8dx.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vpx_encoder.h>

// Zero bytes after the input: the bool decoder may look a little past the
// end of a truncated partition; this keeps any such read inside our buffer.
enum { INPUT_PADDING = 64 };

struct inv_decoder {
	vpx_codec_ctx_t codec;
	uint8_t *buf;
	size_t cap;
	vpx_image_t *img; // owned by libvpx, valid until the next decode
};

static void codec_error(vpx_codec_ctx_t *c, const char *what, char *errbuf) {
	const char *detail = vpx_codec_error_detail(c);
	if (detail) {
		snprintf(errbuf, INV_ERRBUF, "%s: %s (%s)", what, vpx_codec_error(c), detail);
	} else {
		snprintf(errbuf, INV_ERRBUF, "%s: %s", what, vpx_codec_error(c));
	}
}

inv_decoder *inv_dec_new(int threads, char *errbuf) {
	inv_decoder *d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(errbuf, INV_ERRBUF, "out of memory");
		return NULL;
	}
	vpx_codec_dec_cfg_t cfg = {0};
	cfg.threads = threads > 0 ? (unsigned)threads : 1;
	if (vpx_codec_dec_init(&d->codec, vpx_codec_vp8_dx(), &cfg, 0) != VPX_CODEC_OK) {
		codec_error(&d->codec, "init VP8 decoder", errbuf);
		free(d);
		return NULL;
	}
	return d;
}

void inv_dec_free(inv_decoder *d) {
	if (!d) return;
	vpx_codec_destroy(&d->codec);
	free(d->buf);
	free(d);
}

int inv_dec_decode(inv_decoder *d, const uint8_t *data, size_t size, int *shown, char *errbuf) {
	*shown = 0;
	d->img = NULL;
	if (size + INPUT_PADDING > d->cap) {
		size_t cap = size + INPUT_PADDING;
		uint8_t *b = realloc(d->buf, cap);
		if (!b) {
			snprintf(errbuf, INV_ERRBUF, "out of memory for a %zu-byte frame", size);
			return -1;
		}
		d->buf = b;
		d->cap = cap;
	}
	memcpy(d->buf, data, size);
	memset(d->buf + size, 0, INPUT_PADDING);
	if (vpx_codec_decode(&d->codec, d->buf, (unsigned int)size, NULL, 0) != VPX_CODEC_OK) {
		codec_error(&d->codec, "decode VP8 frame", errbuf);
		return -1;
	}
	int corrupted = 0;
	if (vpx_codec_control(&d->codec, VP8D_GET_FRAME_CORRUPTED, &corrupted) == VPX_CODEC_OK && corrupted) {
		snprintf(errbuf, INV_ERRBUF, "decode VP8 frame: corrupt frame (missing or damaged reference)");
		return -1;
	}
	vpx_codec_iter_t iter = NULL;
	vpx_image_t *img;
	while ((img = vpx_codec_get_frame(&d->codec, &iter)) != NULL) {
		d->img = img;
	}
	if (d->img) {
		if (d->img->fmt != VPX_IMG_FMT_I420 || d->img->x_chroma_shift != 1 || d->img->y_chroma_shift != 1 ||
		    d->img->d_w < 1 || d->img->d_h < 1) {
			snprintf(errbuf, INV_ERRBUF, "decode VP8 frame: unexpected picture format %d", (int)d->img->fmt);
			d->img = NULL;
			return -1;
		}
		*shown = 1;
	}
	return 0;
}

void inv_dec_size(const inv_decoder *d, int *w, int *h) {
	*w = d->img ? (int)d->img->d_w : 0;
	*h = d->img ? (int)d->img->d_h : 0;
}

static void copy_plane(uint8_t *dst, int dst_stride, const uint8_t *src, int src_stride, int w, int h) {
	for (int r = 0; r < h; r++) {
		memcpy(dst + (size_t)r * dst_stride, src + (size_t)r * src_stride, (size_t)w);
	}
}

int inv_dec_copy_i420(const inv_decoder *d, uint8_t *dst, int w, int h) {
	const vpx_image_t *img = d->img;
	if (!img || w < 2 || h < 2 || (w & 1) || (h & 1) || w > (int)img->d_w || h > (int)img->d_h) {
		return -1;
	}
	uint8_t *u = dst + (size_t)w * h;
	uint8_t *v = u + (size_t)(w / 2) * (h / 2);
	copy_plane(dst, w, img->planes[VPX_PLANE_Y], img->stride[VPX_PLANE_Y], w, h);
	copy_plane(u, w / 2, img->planes[VPX_PLANE_U], img->stride[VPX_PLANE_U], w / 2, h / 2);
	copy_plane(v, w / 2, img->planes[VPX_PLANE_V], img->stride[VPX_PLANE_V], w / 2, h / 2);
	return 0;
}

int inv_dec_copy_planes(const inv_decoder *d, uint8_t *y, uint8_t *u, uint8_t *v) {
	const vpx_image_t *img = d->img;
	if (!img) return -1;
	int w = (int)img->d_w, h = (int)img->d_h;
	int cw = (w + 1) / 2, ch = (h + 1) / 2;
	copy_plane(y, w, img->planes[VPX_PLANE_Y], img->stride[VPX_PLANE_Y], w, h);
	copy_plane(u, cw, img->planes[VPX_PLANE_U], img->stride[VPX_PLANE_U], cw, ch);
	copy_plane(v, cw, img->planes[VPX_PLANE_V], img->stride[VPX_PLANE_V], cw, ch);
	return 0;
}

struct inv_encoder {
	vpx_codec_ctx_t codec;
	vpx_image_t *img;
	int w, h;
	vpx_codec_iter_t iter;
	int layers;
	unsigned pos;  // the next frame's place in l1t3_pattern
	int tid, sync; // of the frame being encoded
};

// L1T3 as WebRTC's DefaultTemporalLayers makes it for VP8 (and libvpx's
// 3-layer, 4-frame-period example): temporal layer ids 0,2,1,2 repeating,
// the base layer a quarter of the frame rate. The three reference buffers
// keep the layers apart: LAST is the base layer's chain, GOLDEN layer 1's,
// ALTREF only ever holds the last keyframe. So a base-layer frame
// references only LAST (and the keyframe) and decodes with every frame
// above it dropped, which is what lets the pipeline decode a quarter of
// the frames. Frames above the base also leave the entropy context alone:
// a decoder that never sees them must stay in step with the encoder.
//
// The flag pattern is 8 frames long, like WebRTC's: in its first half
// layers 1 and 2 reference only the base layer (layer sync, Y), in the
// second half they may reference layer 1's GOLDEN as well.
enum {
	NO_UPD_ALL = VP8_EFLAG_NO_UPD_LAST | VP8_EFLAG_NO_UPD_GF | VP8_EFLAG_NO_UPD_ARF,
	UPPER = VP8_EFLAG_NO_UPD_ENTROPY,
};
static const struct {
	int tid, sync;
	vpx_enc_frame_flags_t flags;
} l1t3_pattern[8] = {
	{0, 0, VP8_EFLAG_NO_REF_GF | VP8_EFLAG_NO_UPD_GF | VP8_EFLAG_NO_UPD_ARF},
	{2, 1, VP8_EFLAG_NO_REF_GF | NO_UPD_ALL | UPPER},
	{1, 1, VP8_EFLAG_NO_REF_GF | VP8_EFLAG_NO_UPD_LAST | VP8_EFLAG_NO_UPD_ARF | UPPER},
	{2, 0, NO_UPD_ALL | UPPER},
	{0, 0, VP8_EFLAG_NO_REF_GF | VP8_EFLAG_NO_UPD_GF | VP8_EFLAG_NO_UPD_ARF},
	{2, 0, NO_UPD_ALL | UPPER},
	{1, 0, VP8_EFLAG_NO_UPD_LAST | VP8_EFLAG_NO_UPD_ARF | UPPER},
	{2, 0, NO_UPD_ALL | UPPER},
};

inv_encoder *inv_enc_new(const inv_enc_config *c, char *errbuf) {
	inv_encoder *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(errbuf, INV_ERRBUF, "out of memory");
		return NULL;
	}
	vpx_codec_enc_cfg_t cfg;
	if (vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &cfg, 0) != VPX_CODEC_OK) {
		snprintf(errbuf, INV_ERRBUF, "VP8 encoder defaults unavailable");
		free(e);
		return NULL;
	}
	cfg.g_w = (unsigned)c->width;
	cfg.g_h = (unsigned)c->height;
	cfg.g_timebase.num = 1;
	cfg.g_timebase.den = c->timebase_den;
	cfg.g_threads = c->threads > 0 ? (unsigned)c->threads : 1;
	cfg.g_pass = VPX_RC_ONE_PASS;
	cfg.g_lag_in_frames = 0; // realtime: every input frame comes out at once
	cfg.g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
	cfg.rc_end_usage = VPX_CBR;
	cfg.rc_target_bitrate = (unsigned)c->bitrate_kbps;
	cfg.rc_min_quantizer = 2;
	cfg.rc_max_quantizer = 56;
	cfg.rc_undershoot_pct = 100;
	cfg.rc_overshoot_pct = 15;
	cfg.rc_buf_initial_sz = 500;
	cfg.rc_buf_optimal_sz = 600;
	cfg.rc_buf_sz = 1000;
	cfg.rc_dropframe_thresh = 0; // a simulated camera should send every frame
	cfg.kf_mode = VPX_KF_AUTO;
	if (c->keyframe_interval > 0) {
		cfg.kf_max_dist = (unsigned)c->keyframe_interval;
	}
	if (c->temporal_layers == 3) {
		// Layer ids repeat every 4 frames; the base layer runs at a
		// quarter of the rate, layer 1 adds a quarter, layer 2 the other
		// half. The bitrate splits as WebRTC's does: 40 % for the base, 60 %
		// for the base and layer 1 (cumulative).
		static const unsigned ids[4] = {0, 2, 1, 2};
		cfg.ts_number_layers = 3;
		cfg.ts_periodicity = 4;
		memcpy(cfg.ts_layer_id, ids, sizeof ids);
		cfg.ts_rate_decimator[0] = 4;
		cfg.ts_rate_decimator[1] = 2;
		cfg.ts_rate_decimator[2] = 1;
		cfg.ts_target_bitrate[0] = (unsigned)c->bitrate_kbps * 40 / 100;
		cfg.ts_target_bitrate[1] = (unsigned)c->bitrate_kbps * 60 / 100;
		cfg.ts_target_bitrate[2] = (unsigned)c->bitrate_kbps;
	} else if (c->temporal_layers != 1) {
		snprintf(errbuf, INV_ERRBUF, "%d temporal layers: want 1 or 3", c->temporal_layers);
		free(e);
		return NULL;
	}
	e->layers = c->temporal_layers;
	if (vpx_codec_enc_init(&e->codec, vpx_codec_vp8_cx(), &cfg, 0) != VPX_CODEC_OK) {
		codec_error(&e->codec, "init VP8 encoder", errbuf);
		free(e);
		return NULL;
	}
	if (vpx_codec_control(&e->codec, VP8E_SET_CPUUSED, c->cpu_used) != VPX_CODEC_OK ||
	    vpx_codec_control(&e->codec, VP8E_SET_NOISE_SENSITIVITY, 0) != VPX_CODEC_OK ||
	    vpx_codec_control(&e->codec, VP8E_SET_STATIC_THRESHOLD, 1) != VPX_CODEC_OK ||
	    vpx_codec_control(&e->codec, VP8E_SET_MAX_INTRA_BITRATE_PCT, 300) != VPX_CODEC_OK) {
		codec_error(&e->codec, "configure VP8 encoder", errbuf);
		vpx_codec_destroy(&e->codec);
		free(e);
		return NULL;
	}
	e->img = vpx_img_alloc(NULL, VPX_IMG_FMT_I420, (unsigned)c->width, (unsigned)c->height, 16);
	if (!e->img) {
		snprintf(errbuf, INV_ERRBUF, "out of memory for a %dx%d picture", c->width, c->height);
		vpx_codec_destroy(&e->codec);
		free(e);
		return NULL;
	}
	e->w = c->width;
	e->h = c->height;
	return e;
}

void inv_enc_free(inv_encoder *e) {
	if (!e) return;
	vpx_codec_destroy(&e->codec);
	vpx_img_free(e->img);
	free(e);
}

int inv_enc_encode(inv_encoder *e, const uint8_t *y, const uint8_t *u, const uint8_t *v,
                   int64_t pts, unsigned long duration, int force_keyframe, char *errbuf) {
	copy_plane(e->img->planes[VPX_PLANE_Y], e->img->stride[VPX_PLANE_Y], y, e->w, e->w, e->h);
	copy_plane(e->img->planes[VPX_PLANE_U], e->img->stride[VPX_PLANE_U], u, e->w / 2, e->w / 2, e->h / 2);
	copy_plane(e->img->planes[VPX_PLANE_V], e->img->stride[VPX_PLANE_V], v, e->w / 2, e->w / 2, e->h / 2);
	e->iter = NULL;
	vpx_enc_frame_flags_t flags = force_keyframe ? VPX_EFLAG_FORCE_KF : 0;
	e->tid = 0;
	e->sync = 0;
	if (e->layers == 3) {
		if (force_keyframe) e->pos = 0; // a keyframe opens the pattern
		unsigned i = e->pos % 8;
		flags |= l1t3_pattern[i].flags;
		e->tid = l1t3_pattern[i].tid;
		e->sync = l1t3_pattern[i].sync;
		e->pos = (e->pos + 1) % 8;
		if (vpx_codec_control(&e->codec, VP8E_SET_TEMPORAL_LAYER_ID, e->tid) != VPX_CODEC_OK) {
			codec_error(&e->codec, "set VP8 temporal layer", errbuf);
			return -1;
		}
	}
	if (vpx_codec_encode(&e->codec, e->img, (vpx_codec_pts_t)pts, duration, flags, VPX_DL_REALTIME) != VPX_CODEC_OK) {
		codec_error(&e->codec, "encode VP8 frame", errbuf);
		return -1;
	}
	return 0;
}

int inv_enc_next(inv_encoder *e, const uint8_t **data, size_t *size, int *keyframe, int *tid, int *sync,
                 int *droppable) {
	const vpx_codec_cx_pkt_t *pkt;
	while ((pkt = vpx_codec_get_cx_data(&e->codec, &e->iter)) != NULL) {
		if (pkt->kind == VPX_CODEC_CX_FRAME_PKT) {
			*data = pkt->data.frame.buf;
			*size = pkt->data.frame.sz;
			*keyframe = (pkt->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
			*droppable = (pkt->data.frame.flags & VPX_FRAME_IS_DROPPABLE) != 0;
			if (*keyframe && e->layers > 1) {
				// A keyframe refreshes every buffer, so it is a base-layer
				// frame and a layer sync, also one libvpx made of its own
				// accord (kf_max_dist, a scene cut) where the pattern had an
				// upper layer; the pattern starts again after it.
				e->tid = 0;
				e->sync = 1;
				e->pos = 1;
			}
			*tid = e->tid;
			*sync = e->sync;
			return 1;
		}
	}
	return 0;
}
