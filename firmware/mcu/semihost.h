/*
 * semihost.h -- the three ARM semihosting calls the Cortex-M test driver needs.
 *
 * Semihosting lets code on an emulated (or debugger-attached) core print on the host and
 * end the run with a status, with no UART driver per board: `bkpt 0xAB` with the call
 * number in r0 and its argument in r1. qemu-system-arm implements it with
 * `-semihosting-config enable=on,target=native`. On a real board without a debugger the
 * bkpt would stop the core, so only the test driver uses these, never model.c.
 */
#ifndef LANTHORN_SEMIHOST_H
#define LANTHORN_SEMIHOST_H

#include <stdint.h>

void sh_puts(const char *s);               /* SYS_WRITE0: a NUL-terminated string */
void sh_put_int(int32_t v);                /* decimal, no allocation, no printf */
void sh_put_uint(uint32_t v);
__attribute__((noreturn)) void sh_exit(int ok); /* SYS_EXIT: 0 on success, 1 otherwise */

#endif
