/* SHA-256 (FIPS 180-4) for hashing large streams.
 *
 * On x86-64 CPUs with the SHA extensions the block function uses SHA-NI
 * instructions (chosen once at run time); elsewhere a portable C version
 * is used. Both produce identical results. */
#ifndef BERTH_SHA256_H
#define BERTH_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t h[8];   /* chaining state */
	uint64_t len;    /* total bytes fed so far */
	uint8_t buf[64]; /* pending partial block */
	size_t fill;     /* bytes used in buf (0..63) */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* 1 when the SHA-NI path is in use (for tests / diagnostics) */
int sha256_accelerated(void);

#endif
