/* SHA-256 (FIPS 180-4) with a portable block function and an x86-64
 * SHA-NI one, picked once at run time. See sha256.h. */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Round constants: first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes (FIPS 180-4, 4.2.2). Aligned so the SHA-NI
 * path can load four at a time. */
static const uint32_t K[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* ---- portable block function ---------------------------------------- */

static inline uint32_t ror32(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Process nblocks consecutive 64-byte blocks at p into h. */
static void blocks_portable(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	uint32_t w[64];

	for (; nblocks > 0; nblocks--, p += 64) {
		/* message schedule (6.2.2 step 1) */
		for (int t = 0; t < 16; t++)
			w[t] = load_be32(p + 4 * t);
		for (int t = 16; t < 64; t++) {
			uint32_t s0 = ror32(w[t - 15], 7) ^ ror32(w[t - 15], 18) ^ (w[t - 15] >> 3);
			uint32_t s1 = ror32(w[t - 2], 17) ^ ror32(w[t - 2], 19) ^ (w[t - 2] >> 10);
			w[t] = w[t - 16] + s0 + w[t - 7] + s1;
		}

		uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
		uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];

		/* 64 rounds (6.2.2 step 3) */
		for (int t = 0; t < 64; t++) {
			uint32_t S1 = ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25);
			uint32_t ch = (e & f) ^ (~e & g);
			uint32_t t1 = hh + S1 + ch + K[t] + w[t];
			uint32_t S0 = ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22);
			uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
			uint32_t t2 = S0 + maj;
			hh = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}

		h[0] += a; h[1] += b; h[2] += c; h[3] += d;
		h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
	}
}

/* ---- x86-64 SHA-NI block function ------------------------------------ */

#if defined(__x86_64__)
#define SHA256_HAVE_NI 1

/* Four rounds using message words msg (already in host lane order).
 * sha256rnds2 does two rounds; its state operands are packed as
 * ABEF / CDGH, and it takes W+K for two rounds from the low 64 bits. */
#define NI_ROUNDS4(msg, k)                                                     \
	do {                                                                   \
		__m128i wk = _mm_add_epi32((msg), _mm_load_si128((const __m128i *)(k))); \
		cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                  \
		wk = _mm_shuffle_epi32(wk, 0x0e);                              \
		abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);                  \
	} while (0)

/* Next four schedule words from the previous sixteen (w0 oldest, w3
 * newest): W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16]. The result
 * replaces w0. */
#define NI_SCHEDULE(w0, w1, w2, w3)                                            \
	do {                                                                   \
		__m128i x = _mm_sha256msg1_epu32((w0), (w1));                  \
		x = _mm_add_epi32(x, _mm_alignr_epi8((w3), (w2), 4));          \
		(w0) = _mm_sha256msg2_epu32(x, (w3));                          \
	} while (0)

__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_shani(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	/* big-endian word loads: reverse the bytes of each 32-bit lane */
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);

	/* h[0..7] = a..h  ->  abef = {f,e,b,a}, cdgh = {h,g,d,c} (lane 0 first) */
	__m128i t = _mm_loadu_si128((const __m128i *)&h[0]);    /* a b c d */
	__m128i cdgh = _mm_loadu_si128((const __m128i *)&h[4]); /* e f g h */
	t = _mm_shuffle_epi32(t, 0xb1);                          /* b a d c */
	cdgh = _mm_shuffle_epi32(cdgh, 0x1b);                    /* h g f e */
	__m128i abef = _mm_alignr_epi8(t, cdgh, 8);              /* f e b a */
	cdgh = _mm_blend_epi16(cdgh, t, 0xf0);                   /* h g d c */

	for (; nblocks > 0; nblocks--, p += 64) {
		const __m128i save_abef = abef, save_cdgh = cdgh;

		__m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
		__m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
		__m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
		__m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);

		/* rounds 0-15 use the message directly */
		NI_ROUNDS4(m0, K + 0);
		NI_ROUNDS4(m1, K + 4);
		NI_ROUNDS4(m2, K + 8);
		NI_ROUNDS4(m3, K + 12);

		/* rounds 16-63: extend the schedule four words at a time,
		 * rotating through m0..m3 */
		for (int r = 16; r < 64; r += 16) {
			NI_SCHEDULE(m0, m1, m2, m3);
			NI_ROUNDS4(m0, K + r);
			NI_SCHEDULE(m1, m2, m3, m0);
			NI_ROUNDS4(m1, K + r + 4);
			NI_SCHEDULE(m2, m3, m0, m1);
			NI_ROUNDS4(m2, K + r + 8);
			NI_SCHEDULE(m3, m0, m1, m2);
			NI_ROUNDS4(m3, K + r + 12);
		}

		abef = _mm_add_epi32(abef, save_abef);
		cdgh = _mm_add_epi32(cdgh, save_cdgh);
	}

	/* back to h[0..7] = a..h */
	t = _mm_shuffle_epi32(abef, 0x1b);                 /* a b e f */
	cdgh = _mm_shuffle_epi32(cdgh, 0xb1);              /* g h c d */
	abef = _mm_blend_epi16(t, cdgh, 0xf0);             /* a b c d */
	cdgh = _mm_alignr_epi8(cdgh, t, 8);                /* e f g h */
	_mm_storeu_si128((__m128i *)&h[0], abef);
	_mm_storeu_si128((__m128i *)&h[4], cdgh);
}

#undef NI_ROUNDS4
#undef NI_SCHEDULE
#endif /* __x86_64__ */

/* ---- dispatch --------------------------------------------------------- */

/* -1: not yet probed, 0: portable, 1: SHA-NI. Probing is idempotent, so
 * concurrent first calls only race to store the same value. */
static int sha256_mode = -1;

static int probe_mode(void)
{
	int m = __atomic_load_n(&sha256_mode, __ATOMIC_RELAXED);
	if (m >= 0)
		return m;
	m = 0;
#ifdef SHA256_HAVE_NI
	__builtin_cpu_init();
	/* SSSE3 and SSE4.1 are implied on every SHA-NI CPU; check anyway. */
	if (__builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") &&
	    __builtin_cpu_supports("ssse3"))
		m = 1;
#endif
	__atomic_store_n(&sha256_mode, m, __ATOMIC_RELAXED);
	return m;
}

static void blocks(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
#ifdef SHA256_HAVE_NI
	if (probe_mode() == 1) {
		blocks_shani(h, p, nblocks);
		return;
	}
#endif
	blocks_portable(h, p, nblocks);
}

int sha256_accelerated(void)
{
	return probe_mode() == 1;
}

/* ---- streaming interface ---------------------------------------------- */

void sha256_init(struct sha256 *s)
{
	/* FIPS 180-4, 5.3.3 */
	static const uint32_t iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	memcpy(s->h, iv, sizeof iv);
	s->len = 0;
	s->fill = 0;
}

void sha256_update(struct sha256 *s, const void *data, size_t n)
{
	const uint8_t *p = data;

	s->len += n;

	/* top up a pending partial block first */
	if (s->fill > 0) {
		size_t take = 64 - s->fill;
		if (take > n)
			take = n;
		memcpy(s->buf + s->fill, p, take);
		s->fill += take;
		p += take;
		n -= take;
		if (s->fill < 64)
			return;
		blocks(s->h, s->buf, 1);
		s->fill = 0;
	}

	/* whole blocks straight from the caller's buffer */
	if (n >= 64) {
		size_t nb = n / 64;
		blocks(s->h, p, nb);
		p += nb * 64;
		n -= nb * 64;
	}

	/* keep the tail for later */
	if (n > 0) {
		memcpy(s->buf, p, n);
		s->fill = n;
	}
}

void sha256_final(struct sha256 *s, uint8_t out[32])
{
	uint64_t bits = s->len * 8;

	/* 0x80, zeros to 56 mod 64, then the 64-bit big-endian bit length */
	s->buf[s->fill++] = 0x80;
	if (s->fill > 56) {
		memset(s->buf + s->fill, 0, 64 - s->fill);
		blocks(s->h, s->buf, 1);
		s->fill = 0;
	}
	memset(s->buf + s->fill, 0, 56 - s->fill);
	store_be32(s->buf + 56, (uint32_t)(bits >> 32));
	store_be32(s->buf + 60, (uint32_t)bits);
	blocks(s->h, s->buf, 1);

	for (int i = 0; i < 8; i++)
		store_be32(out + 4 * i, s->h[i]);

	/* leave nothing of the message behind */
	memset(s, 0, sizeof *s);
}
