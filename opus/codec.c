#include "codec.h"

#include <stddef.h>

static int live;

OpusDecoder *inv_opus_dec_new(int rate, int *err) {
	OpusDecoder *d = opus_decoder_create(rate, 1, err);
	if (d) __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
	return d;
}

void inv_opus_dec_free(OpusDecoder *d) {
	if (!d) return;
	opus_decoder_destroy(d);
	__atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
}

int inv_opus_dec_reset(OpusDecoder *d) { return opus_decoder_ctl(d, OPUS_RESET_STATE); }

OpusEncoder *inv_opus_enc_new(const inv_opus_enc_config *c, int *err) {
	OpusEncoder *e = opus_encoder_create(48000, c->channels, OPUS_APPLICATION_VOIP, err);
	if (!e) return NULL;
	int r = opus_encoder_ctl(e, OPUS_SET_BITRATE(c->bitrate));
	if (r == OPUS_OK && c->complexity > 0) r = opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(c->complexity));
	if (r == OPUS_OK) r = opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(c->inband_fec));
	if (r == OPUS_OK) r = opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC(c->loss_percent));
	if (r != OPUS_OK) {
		opus_encoder_destroy(e);
		*err = r;
		return NULL;
	}
	__atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
	return e;
}

void inv_opus_enc_free(OpusEncoder *e) {
	if (!e) return;
	opus_encoder_destroy(e);
	__atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
}

int inv_opus_enc_lookahead(OpusEncoder *e) {
	opus_int32 n = 0;
	int r = opus_encoder_ctl(e, OPUS_GET_LOOKAHEAD(&n));
	return r == OPUS_OK ? (int)n : r;
}

int inv_opus_live(void) { return __atomic_load_n(&live, __ATOMIC_RELAXED); }
