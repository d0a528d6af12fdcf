/* libFuzzer target: the configuration loader (io/config.c) on an arbitrary
 * `key = value` file, followed by the serve checks. No crash, no leak, and
 * a secret given in the file never appears in an error message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/config.h"
#include "io/config_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/kycd-fuzz-config.%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    /* Always carry a recognisable secret, to check it never leaks. */
    fputs("webhook_tokens = SECRETSECRETSECRET42\n", f);
    fwrite(data, 1, size, f);
    fclose(f);
    char arg0[] = "--config";
    char *argv[] = {arg0, path, NULL};
    char *envp[] = {NULL};
    kycd_config cfg;
    kerr err;
    kerr_clear(&err);
    if (config_load(&cfg, envp, 2, argv, &err) == 0) {
        kerr_clear(&err);
        (void)config_check_serve(&cfg, &err);
    }
    /* (unless the input itself repeats it as the value of a plain key) */
    if (strstr(err.msg, "SECRETSECRETSECRET42") && !memmem(data, size, "SECRET", 6))
        abort();
    config_deinit(&cfg);
    return 0;
}
