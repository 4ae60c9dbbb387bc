/* semihost.c -- see semihost.h. */
#include "semihost.h"

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_FLEN 0x0C
#define SYS_GET_CMDLINE 0x15
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

static uint32_t cstrlen(const char *s)
{
    uint32_t n = 0;
    while (s[n]) n++;
    return n;
}

int32_t sh_open(const char *path, int write)
{
    uint32_t block[3] = {(uint32_t)(uintptr_t)path, write ? 5u : 1u, cstrlen(path)}; /* wb / rb */
    return (int32_t)semihost(SYS_OPEN, block);
}

int32_t sh_flen(int32_t handle)
{
    uint32_t block[1] = {(uint32_t)handle};
    return (int32_t)semihost(SYS_FLEN, block);
}

int32_t sh_read(int32_t handle, void *buf, uint32_t len)
{
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, len};
    uint32_t left = semihost(SYS_READ, block); /* bytes NOT read */
    return left > len ? -1 : (int32_t)(len - left);
}

int32_t sh_write(int32_t handle, const void *buf, uint32_t len)
{
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, len};
    return semihost(SYS_WRITE, block) == 0 ? 0 : -1;
}

void sh_close(int32_t handle)
{
    uint32_t block[1] = {(uint32_t)handle};
    semihost(SYS_CLOSE, block);
}

int32_t sh_cmdline(char *buf, uint32_t size)
{
    uint32_t block[2] = {(uint32_t)(uintptr_t)buf, size};
    if (semihost(SYS_GET_CMDLINE, block) != 0) return -1;
    return (int32_t)block[1];
}
