/*
 * pyquic/_crypto_core.c: the OpenSSL calls behind pyquic._crypto (see
 * _crypto_core.h).  Callers have checked every length before these run; the
 * functions here touch only the bytes those checks allow.
 */
#include "_crypto_core.h"

#include <string.h>

#include <openssl/crypto.h>

/* RFC 9000 Appendix A.3, rearranged so that no unsigned value wraps.
 * largest_pn is -1 when nothing was received yet, so expected >= 0.  One case
 * the RFC's pseudocode leaves open: after largest_pn = 2^62 - 1 it returns
 * 2^62 | truncated; packet numbers stop at 2^62 - 1 (§12.3), so the window
 * below is the closest valid answer. */
uint64_t decode_pn(uint64_t truncated, int pn_nbits, long long largest_pn) {
    uint64_t expected = (uint64_t)(largest_pn + 1);
    uint64_t win = 1ULL << pn_nbits, hwin = win / 2;
    uint64_t candidate = (expected & ~(win - 1)) | truncated;
    if (candidate + hwin <= expected && candidate < PN_LIMIT - win)
        return candidate + win;
    if ((candidate > expected + hwin && candidate >= win) || candidate >= PN_LIMIT)
        return candidate - win;
    return candidate;
}

/* ---------------------------------------------------------------- AEAD core */


/* OpenSSL 3's fetch takes a lock and searches the provider store; the few
 * algorithms QUIC uses are fetched once and kept for the process. */
static const EVP_CIPHER *cached_cipher(const char *name) {
    static struct {
        const char *name;
        EVP_CIPHER *cipher;
    } cache[8];
    for (size_t i = 0; i < sizeof(cache) / sizeof(cache[0]); i++) {
        if (cache[i].name == name)
            return cache[i].cipher;
        if (cache[i].name == NULL) {
            EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
            if (cipher != NULL) {
                cache[i].name = name;
                cache[i].cipher = cipher;
            }
            return cipher;
        }
    }
    return NULL; /* the table holds more names than SUITES has */
}

int aead_init(aead_core *c, const suite_info *info, const unsigned char *key, const unsigned char *iv) {
    c->enc = c->dec = NULL;
    c->cipher = cached_cipher(info->aead_name);
    memcpy(c->key, key, (size_t)info->key_length);
    memcpy(c->iv, iv, IV_LENGTH);
    return c->cipher != NULL;
}

/* The context for one direction, made (cipher and key set) on first use. */
static EVP_CIPHER_CTX *aead_ctx(aead_core *c, int enc) {
    EVP_CIPHER_CTX **slot = enc ? &c->enc : &c->dec;
    if (*slot == NULL) {
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        if (ctx == NULL)
            return NULL;
        if (!EVP_CipherInit_ex(ctx, c->cipher, NULL, c->key, NULL, enc)) {
            EVP_CIPHER_CTX_free(ctx);
            return NULL;
        }
        *slot = ctx;
    }
    return *slot;
}

void aead_clear(aead_core *c) {
    /* EVP_CIPHER_CTX_free cleanses the key schedules; key and iv are our copies. */
    EVP_CIPHER_CTX_free(c->enc);
    EVP_CIPHER_CTX_free(c->dec);
    c->enc = c->dec = NULL;
    OPENSSL_cleanse(c->key, sizeof(c->key));
    OPENSSL_cleanse(c->iv, sizeof(c->iv));
}

/* RFC 9001 §5.3: the nonce is the iv XOR the packet number left-padded to 12 bytes. */
void make_nonce(const aead_core *c, uint64_t pn, unsigned char *nonce) {
    memcpy(nonce, c->iv, IV_LENGTH);
    for (int i = 0; i < 8; i++)
        nonce[IV_LENGTH - 1 - i] ^= (unsigned char)(pn >> (8 * i));
}

/* out receives inlen + TAG_LENGTH bytes.  `in` may equal `out` exactly (EVP
 * supports that); callers make sure nothing else overlaps the bytes written. */
int aead_seal_raw(aead_core *c, uint64_t pn, const unsigned char *aad, ptrdiff_t aadlen,
                         const unsigned char *in, ptrdiff_t inlen, unsigned char *out) {
    unsigned char nonce[IV_LENGTH];
    int outl;
    EVP_CIPHER_CTX *ctx = aead_ctx(c, 1);
    make_nonce(c, pn, nonce);
    return ctx != NULL && EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 1) &&
           (aadlen == 0 || EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadlen)) &&
           (inlen == 0 || EVP_CipherUpdate(ctx, out, &outl, in, (int)inlen)) &&
           EVP_CipherFinal_ex(ctx, out + inlen, &outl) && /* writes nothing for these AEADs */
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LENGTH, out + inlen) > 0;
}

/* inlen >= TAG_LENGTH (checked by callers); out receives inlen - TAG_LENGTH bytes.
 * 0 when the tag does not authenticate. */
int aead_open_raw(aead_core *c, uint64_t pn, const unsigned char *aad, ptrdiff_t aadlen,
                         const unsigned char *in, ptrdiff_t inlen, unsigned char *out) {
    unsigned char nonce[IV_LENGTH];
    ptrdiff_t ctlen = inlen - TAG_LENGTH;
    int outl;
    EVP_CIPHER_CTX *ctx = aead_ctx(c, 0);
    make_nonce(c, pn, nonce);
    return ctx != NULL && EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 0) &&
           (aadlen == 0 || EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadlen)) &&
           (ctlen == 0 || EVP_CipherUpdate(ctx, out, &outl, in, (int)ctlen)) &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LENGTH, (void *)(in + ctlen)) > 0 &&
           EVP_CipherFinal_ex(ctx, out + ctlen, &outl) > 0;
}

/* -------------------------------------------------------------- header core */


int hp_init(hp_core *h, const suite_info *info, const unsigned char *key) {
    const EVP_CIPHER *cipher = cached_cipher(info->hp_name);
    h->chacha = info->suite == 0x1303;
    return cipher != NULL && (h->ctx = EVP_CIPHER_CTX_new()) != NULL &&
           EVP_EncryptInit_ex(h->ctx, cipher, NULL, key, NULL) && (h->chacha || EVP_CIPHER_CTX_set_padding(h->ctx, 0));
}

/* RFC 9001 §5.4.3 / §5.4.4: mask = AES-ECB(hp, sample), or ChaCha20 keyed with hp,
 * whose 16-byte IV is the sample itself (counter LE32 || nonce), over 5 zero bytes.
 * mask has room for 2 blocks because OpenSSL may assume a block of slack. */
int hp_mask(hp_core *h, const unsigned char *sample, unsigned char *mask) {
    static const unsigned char zeros[5] = {0};
    int outl;
    if (h->chacha)
        return EVP_EncryptInit_ex(h->ctx, NULL, NULL, NULL, sample) && EVP_EncryptUpdate(h->ctx, mask, &outl, zeros, 5);
    return EVP_EncryptUpdate(h->ctx, mask, &outl, sample, SAMPLE_LENGTH) && outl == SAMPLE_LENGTH;
}

/* §5.4.1: long headers (0x80 set) mask the low 4 bits of the first byte, short ones 5. */
unsigned char first_byte_bits(unsigned char first) {
    return (first & 0x80) ? 0x0f : 0x1f;
}

/* Protect in place.  pn_len comes from the *plain* first byte; pkt holds at least
 * pn_offset + 4 + SAMPLE_LENGTH bytes (checked by callers, §5.4.2). */
int hp_apply_raw(hp_core *h, unsigned char *pkt, ptrdiff_t pn_offset, int pn_len) {
    unsigned char mask[2 * SAMPLE_LENGTH];
    if (!hp_mask(h, pkt + pn_offset + PN_MAX_LENGTH, mask))
        return 0;
    pkt[0] ^= mask[0] & first_byte_bits(pkt[0]);
    for (int i = 0; i < pn_len; i++)
        pkt[pn_offset + i] ^= mask[1 + i];
    return 1;
}

/* Removal, first half: the mask and the packet number length it reveals. */
int hp_peek(hp_core *h, const unsigned char *pkt, ptrdiff_t pn_offset, unsigned char *mask, int *pn_len) {
    if (!hp_mask(h, pkt + pn_offset + PN_MAX_LENGTH, mask))
        return 0;
    *pn_len = ((pkt[0] ^ (mask[0] & first_byte_bits(pkt[0]))) & 0x03) + 1;
    return 1;
}

/* Removal, second half: unmask a copy of the header (pn_offset + pn_len bytes). */
uint64_t hp_unmask(unsigned char *hdr, ptrdiff_t pn_offset, int pn_len, const unsigned char *mask) {
    uint64_t truncated = 0;
    hdr[0] ^= mask[0] & first_byte_bits(hdr[0]);
    for (int i = 0; i < pn_len; i++) {
        hdr[pn_offset + i] ^= mask[1 + i];
        truncated = (truncated << 8) | hdr[pn_offset + i];
    }
    return truncated;
}
