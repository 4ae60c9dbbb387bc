/* semihost.c -- see semihost.h. */
#include "semihost.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026 /* qemu: exit status 0 */
#define ADP_STOPPED_RUNTIME_ERROR 0x20023    /* qemu: exit status 1 */

static uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_puts(const char *s) { semihost(SYS_WRITE0, s); }

void sh_put_uint(uint32_t v)
{
    char buf[12];
    char *p = buf + sizeof buf - 1;
    *p = 0;
    do {
        *--p = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    sh_puts(p);
}

void sh_put_int(int32_t v)
{
    if (v < 0) {
        sh_puts("-");
        sh_put_uint(0u - (uint32_t)v);
    } else {
        sh_put_uint((uint32_t)v);
    }
}

void sh_exit(int ok)
{
    semihost(SYS_EXIT, (const void *)(uintptr_t)(ok ? ADP_STOPPED_APPLICATION_EXIT
                                                     : ADP_STOPPED_RUNTIME_ERROR));
    for (;;) {
    }
}
