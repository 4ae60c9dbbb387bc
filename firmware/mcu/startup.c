/*
 * startup.c -- a minimal Cortex-M reset path (M0/M0+/M3/M4): vector table, .data copy,
 * .bss zeroing, FPU enable when built for hard float, then main(). Faults print their
 * name over semihosting and end the run with failure, so a crash under qemu is a clear
 * test failure rather than a hang. Symbols come from cortex-m.ld.
 */
#include <stdint.h>
#include <string.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

__attribute__((noreturn)) void Reset_Handler(void)
{
    memcpy(&_sdata, &_sidata, (size_t)((uint8_t *)&_edata - (uint8_t *)&_sdata));
    memset(&_sbss, 0, (size_t)((uint8_t *)&_ebss - (uint8_t *)&_sbss));
#if defined(__ARM_FP) && !defined(__SOFTFP__)
    /* CPACR: full access to CP10 and CP11 (the FPU) before any float instruction. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    sh_exit(main() == 0);
}

static void fault(const char *what)
{
    sh_puts("lanthorn-mcu: ");
    sh_puts(what);
    sh_puts("\n");
    sh_exit(0);
}

void NMI_Handler(void) { fault("NMI"); }
void HardFault_Handler(void) { fault("HardFault"); }
void Default_Handler(void) { fault("unexpected interrupt"); }

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, NMI_Handler, HardFault_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler,
};
