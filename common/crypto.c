#include "common/crypto.h"

#include <stdbool.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* OpenSSL 3 builds its algorithm name map on the first fetch. By default it
 * first registers every legacy cipher and digest object and copies their names
 * in, loads all error strings, and frees it all again at exit: about 0.6 ms of a
 * 1 ms first HMAC, and 0.2 ms at exit, on every supervisor start. aidp asks for
 * algorithms only through EVP with the providers' own names (EVP_Q_mac "HMAC",
 * EVP_sha256(), EVP_aes_256_gcm(), which fetch "SHA256", "id-aes256-GCM", ...),
 * never through the legacy name tables, and prints no OpenSSL error strings.
 * The configuration file (/etc/ssl/openssl.cnf, or OPENSSL_CONF) is still
 * read, so a site's provider set-up (a FIPS provider, say) applies. */
void aidp_crypto_init(void)
{
        OPENSSL_init_crypto(OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS |
                                    OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_NO_ATEXIT,
                            NULL);
}

static bool g_warm;

void aidp_crypto_warm(void)
{
        EVP_MAC_free(EVP_MAC_fetch(NULL, "HMAC", NULL));
        EVP_MD_free(EVP_MD_fetch(NULL, "SHA256", NULL));
        g_warm = true;
}

bool aidp_crypto_warmed(void)
{
        return g_warm;
}
