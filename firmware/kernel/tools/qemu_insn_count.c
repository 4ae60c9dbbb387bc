/*
 * qemu_insn_count.c -- a QEMU TCG plugin that counts guest instructions executed, for
 * tools/arm_cost_model.py (instructions per inference of lanthorn's kernel and of
 * onnxruntime under qemu-aarch64; qemu's timing means nothing, its instruction count is exact).
 *
 *   gcc -shared -fPIC -O2 -o libinsn_count.so qemu_insn_count.c
 *   qemu-aarch64 -plugin ./libinsn_count.so,out=COUNT_FILE PROGRAM ...
 *
 * At each translation block's translation it asks QEMU to add the block's instruction
 * count to one 64-bit counter inline every time the block runs (no callback per block);
 * at exit it writes the total to COUNT_FILE (or stderr), then one line per marker: the count
 * when the guest made system call number LK_MARK (0x4C4B, which Linux does not have, so
 * the guest just gets ENOSYS), e.g. before and after a timed loop -- a count of exactly
 * that region, start-up and library loading excluded. Several guest threads add to the
 * same counter without atomics; the models here run on one thread.
 *
 * Debian ships qemu-user with plugin support but not the plugin header, so the few
 * declarations of QEMU's stable plugin API (version 1, include/qemu/qemu-plugin.h) used
 * here are written out below.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                                              int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                                              uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                                              uint64_t a8);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

#define LK_MARK 0x4C4B
#define MAX_MARKS 64

static uint64_t executed;
static uint64_t marks[MAX_MARKS];
static int n_marks;
static char out_path[4096];

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6;
    (void)a7; (void)a8;
    if (num == LK_MARK && n_marks < MAX_MARKS) marks[n_marks++] = executed;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_exit_(qemu_plugin_id_t id, void *userdata)
{
    (void)id; (void)userdata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (f == NULL) return;
    fprintf(f, "%llu\n", (unsigned long long)executed);
    for (int i = 0; i < n_marks; i++) fprintf(f, "%llu\n", (unsigned long long)marks[i]);
    if (f != stderr) fclose(f);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0) {
            strncpy(out_path, argv[i] + 4, sizeof out_path - 1);
        }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
