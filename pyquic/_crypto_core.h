/*
 * pyquic/_crypto_core.h: the OpenSSL side of QUIC packet protection, with no
 * Python in it: the suite table, AEAD seal/open with the QUIC nonce (RFC 9001
 * §5.3), header-protection masks (§5.4) and packet number decoding (RFC 9000
 * A.3).  _crypto.c wraps these for Python; _crypto_core.c implements them.
 */
#ifndef PYQUIC_CRYPTO_CORE_H
#define PYQUIC_CRYPTO_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define IV_LENGTH 12
#define TAG_LENGTH 16
#define SAMPLE_LENGTH 16
#define PN_MAX_LENGTH 4
#define PN_LIMIT (1ULL << 62) /* RFC 9000 §12.3: packet numbers are below 2^62 */

typedef struct {
    int suite;
    const char *aead_name; /* OpenSSL 3 algorithm names, fetched at construction */
    const char *hp_name;
    int key_length;
    long long confidentiality_limit; /* RFC 9001 §6.6 */
    long long integrity_limit;
} suite_info;

#define MAX_KEY_LENGTH 32

/* The two cipher contexts are made on first use: a connection's send keys
 * never open and its receive keys never seal, and an OpenSSL AEAD context
 * with its key schedule costs about a kilobyte (issue 14's memory target).
 * Until then the key waits here; aead_clear cleanses it. */
typedef struct {
    EVP_CIPHER_CTX *enc; /* cipher and key set once; per packet only the nonce */
    EVP_CIPHER_CTX *dec;
    const EVP_CIPHER *cipher; /* fetched once per process (cached_cipher) */
    unsigned char key[MAX_KEY_LENGTH];
    unsigned char iv[IV_LENGTH];
} aead_core;

typedef struct {
    EVP_CIPHER_CTX *ctx;
    int chacha;
} hp_core;

uint64_t decode_pn(uint64_t truncated, int pn_nbits, long long largest_pn);
int aead_init(aead_core *c, const suite_info *info, const unsigned char *key, const unsigned char *iv);
void aead_clear(aead_core *c);
void make_nonce(const aead_core *c, uint64_t pn, unsigned char *nonce);
int aead_seal_raw(aead_core *c, uint64_t pn, const unsigned char *aad, ptrdiff_t aadlen, const unsigned char *in, ptrdiff_t inlen, unsigned char *out);
int aead_open_raw(aead_core *c, uint64_t pn, const unsigned char *aad, ptrdiff_t aadlen, const unsigned char *in, ptrdiff_t inlen, unsigned char *out);
int hp_init(hp_core *h, const suite_info *info, const unsigned char *key);
int hp_mask(hp_core *h, const unsigned char *sample, unsigned char *mask);
unsigned char first_byte_bits(unsigned char first);
int hp_apply_raw(hp_core *h, unsigned char *pkt, ptrdiff_t pn_offset, int pn_len);
int hp_peek(hp_core *h, const unsigned char *pkt, ptrdiff_t pn_offset, unsigned char *mask, int *pn_len);
uint64_t hp_unmask(unsigned char *hdr, ptrdiff_t pn_offset, int pn_len, const unsigned char *mask);

#endif
