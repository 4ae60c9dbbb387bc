/*
 * semihost.h -- the ARM semihosting calls the Cortex-M test drivers need.
 *
 * Semihosting lets code on an emulated (or debugger-attached) core print on the host and
 * end the run with a status, with no UART driver per board: `bkpt 0xAB` with the call
 * number in r0 and its argument in r1. qemu-system-arm implements it with
 * `-semihosting-config enable=on,target=native`. On a real board without a debugger the
 * bkpt would stop the core, so only the test drivers use these, never model.c.
 */
#ifndef LANTHORN_SEMIHOST_H
#define LANTHORN_SEMIHOST_H

#include <stdint.h>

void sh_puts(const char *s);               /* SYS_WRITE0: a NUL-terminated string */
/* Host files, for the blob runner: SYS_OPEN ("rb" / "wb"), SYS_READ, SYS_WRITE, SYS_CLOSE,
 * SYS_FLEN, SYS_GET_CMDLINE. Handles are >= 0; -1 on failure. */
int32_t sh_open(const char *path, int write);
int32_t sh_flen(int32_t handle);
int32_t sh_read(int32_t handle, void *buf, uint32_t len);        /* bytes read, or -1 */
int32_t sh_write(int32_t handle, const void *buf, uint32_t len); /* 0, or -1 */
void sh_close(int32_t handle);
int32_t sh_cmdline(char *buf, uint32_t size);                    /* length, or -1 */
void sh_put_int(int32_t v);                /* decimal, no allocation, no printf */
void sh_put_uint(uint32_t v);
__attribute__((noreturn)) void sh_exit(int ok); /* SYS_EXIT: 0 on success, 1 otherwise */

#endif
