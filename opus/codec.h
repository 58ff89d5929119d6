// The C side of package opus: what cgo cannot call itself (libopus's ctl
// calls are variadic) and a count of live codecs for the leak test.
#ifndef INVIGIL_OPUS_CODEC_H
#define INVIGIL_OPUS_CODEC_H

#include <opus.h>

// inv_opus_dec_new makes a mono decoder whose output is at rate (8000,
// 12000, 16000, 24000 or 48000; stereo streams are mixed down by libopus);
// NULL with *err set on failure.
OpusDecoder *inv_opus_dec_new(int rate, int *err);
void inv_opus_dec_free(OpusDecoder *d);
int inv_opus_dec_reset(OpusDecoder *d);

typedef struct {
	int channels;
	int bitrate;      // bits per second
	int complexity;   // 0 keeps libopus's default
	int inband_fec;   // 0 or 1
	int loss_percent; // the packet loss FEC plans for
} inv_opus_enc_config;

// inv_opus_enc_new makes a 48 kHz VOIP encoder; NULL with *err set on failure.
OpusEncoder *inv_opus_enc_new(const inv_opus_enc_config *cfg, int *err);
void inv_opus_enc_free(OpusEncoder *e);
// inv_opus_enc_lookahead is the encoder's delay in samples at 48 kHz, or a
// negative libopus error.
int inv_opus_enc_lookahead(OpusEncoder *e);

// inv_opus_live counts decoders and encoders made and not yet freed.
int inv_opus_live(void);

#endif
