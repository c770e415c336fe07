/* test_tls.c - tls.c without a network: SPKI pin decoding, and trust anchors that fail to load. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "dotgw/config.h"
#include "dotgw/tls.h"

int main(void)
{
	struct config cfg;
	struct tls_ctx *ctx = NULL;
	uint8_t pin[32], zero[32] = {0};

	/* base64 of 32 zero octets, and of 0x00..0x1f */
	CHECK_EQ(tls_pin_parse(pin, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), 0);
	CHECK(memcmp(pin, zero, 32) == 0);
	CHECK_EQ(tls_pin_parse(pin, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="), 0);
	for (unsigned int i = 0; i < 32; i++)
		CHECK_EQ(pin[i], i);
	memset(pin, 0x55, sizeof(pin));
	CHECK_EQ(tls_pin_parse(pin, ""), -EINVAL);
	CHECK_EQ(tls_pin_parse(pin, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
		 -EINVAL); /* 43 */
	CHECK_EQ(tls_pin_parse(pin, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="),
		 -EINVAL); /* 31 */
	CHECK_EQ(tls_pin_parse(pin, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
		 -EINVAL); /* 33 */
	CHECK_EQ(tls_pin_parse(pin, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!A="),
		 -EINVAL); /* not base64 */
	CHECK_EQ(tls_pin_parse(pin, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=A"),
		 -EINVAL);	/* 45 */
	CHECK_EQ(pin[0], 0x55); /* written only on success */

	config_init(&cfg);
	cfg.ca_file = "/nonexistent/ca.pem";
	CHECK_EQ(tls_ctx_new(&ctx, &cfg), -EINVAL);
	CHECK(ctx == NULL);
	cfg.ca_file = NULL; /* the system store: present or not, the context is made */
	CHECK_EQ(tls_ctx_new(&ctx, &cfg), 0);
	tls_ctx_free(ctx);
	tls_ctx_free(NULL);
	return check_done("tls");
}
