/*
 * _lk: CPython glue for the lanthorn C kernel (firmware/kernel).
 *
 * The kernel itself never allocates; this glue owns every buffer: an aligned copy of the
 * blob, the tensor/layer structs, packed weights, scratch and the activation arena, all
 * made once in Model(). Model.run() is then one call per inference: copy inputs into the
 * arena, run every layer with the GIL released, copy outputs out. Model.run_float() is the
 * float call a user makes (model(x)): it quantizes the float32 input straight into the
 * arena and dequantizes the output, with exactly lanthorn.device.int8's float32 operations,
 * so a 25k-MAC model costs one C call instead of a dozen numpy calls around it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lk.h"
#include "lk_internal.h"   /* lk_round_even, lk_clampf: the kernel's own int8.py arithmetic */

typedef struct {
    PyObject_HEAD
    void *mem[5];        /* raw allocations (blob, tensors, layers, packed, arena+scratch) */
    uint8_t *blob;
    uint8_t *arena;
    void *scratch;
    size_t packed_size, scratch_size;
    lk_model model;
    int busy;
} ModelObject;

/* 16-byte aligned allocation; the raw pointer is kept in *raw for freeing. */
static void *aligned(size_t n, void **raw)
{
    *raw = PyMem_Calloc(1, n + 16);
    if (*raw == NULL) return NULL;
    return (void *)(((uintptr_t)*raw + 15u) & ~(uintptr_t)15u);
}

static void Model_dealloc(ModelObject *self)
{
    for (int i = 0; i < 5; i++) PyMem_Free(self->mem[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static const char *status_text(int rc)
{
    switch (rc) {
    case LK_ERR_BLOB: return "malformed model blob";
    case LK_ERR_CAPACITY: return "buffer too small";
    case LK_ERR_OP: return "unsupported operator or parameters";
    case LK_ERR_INDEX: return "gather index out of range";
    case LK_ERR_VARIANT: return "kernel variant not available on this CPU";
    default: return "kernel error";
    }
}

static int Model_init(ModelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"blob", "variant", NULL};
    Py_buffer blob;
    int variant = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|i", kwlist, &blob, &variant)) return -1;
    if (self->blob != NULL) {
        PyBuffer_Release(&blob);
        PyErr_SetString(PyExc_RuntimeError, "Model is already initialised");
        return -1;
    }
    int rc = LK_OK;
    int32_t nt = 0, nl = 0;
    self->blob = aligned((size_t)blob.len, &self->mem[0]);
    if (self->blob == NULL) goto nomem;
    memcpy(self->blob, blob.buf, (size_t)blob.len);
    rc = lk_blob_counts(self->blob, (size_t)blob.len, &nt, &nl);
    if (rc != LK_OK) goto fail;
    lk_tensor *tensors = aligned(sizeof(lk_tensor) * (size_t)(nt ? nt : 1), &self->mem[1]);
    lk_layer *layers = aligned(sizeof(lk_layer) * (size_t)(nl ? nl : 1), &self->mem[2]);
    if (tensors == NULL || layers == NULL) goto nomem;
    rc = lk_model_init(&self->model, self->blob, (size_t)blob.len, tensors, nt, layers, nl);
    if (rc != LK_OK) goto fail;
    if (variant < 0) variant = lk_best_variant();
    if (variant >= LK_N_VARIANTS || !lk_variant_supported(variant)) {
        rc = LK_ERR_VARIANT;
        goto fail;
    }
    self->packed_size = lk_packed_size(&self->model, variant);
    void *packed = aligned(self->packed_size, &self->mem[3]);
    if (packed == NULL) goto nomem;
    rc = lk_prepare(&self->model, variant, packed, self->packed_size);
    if (rc != LK_OK) goto fail;
    self->scratch_size = lk_scratch_size(&self->model, variant);
    size_t arena16 = ((size_t)self->model.arena_size + 15u) & ~(size_t)15u;
    self->arena = aligned(arena16 + self->scratch_size, &self->mem[4]);
    if (self->arena == NULL) goto nomem;
    self->scratch = self->arena + arena16;
    PyBuffer_Release(&blob);
    return 0;
nomem:
    PyBuffer_Release(&blob);
    PyErr_NoMemory();
    return -1;
fail:
    PyBuffer_Release(&blob);
    PyErr_Format(PyExc_ValueError, "lanthorn C kernel: %s (code %d)", status_text(rc), rc);
    return -1;
}

static size_t tensor_bytes(const lk_tensor *t)
{
    size_t n = t->dtype == LK_INT32 ? 4 : 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

/* Copy each buffer of `seq` to/from the arena region of tensors idx[0..n). */
static int transfer(ModelObject *self, PyObject *seq, const int32_t *idx, int32_t n, int to_arena)
{
    PyObject *fast = PySequence_Fast(seq, "expected a list of arrays");
    if (fast == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "expected %d %s array(s), got %zd", (int)n,
                     to_arena ? "input" : "output", PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    for (int32_t i = 0; i < n; i++) {
        Py_buffer view;
        int flags = PyBUF_C_CONTIGUOUS | (to_arena ? 0 : PyBUF_WRITABLE);
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, i), &view, flags) < 0) {
            Py_DECREF(fast);
            return -1;
        }
        const lk_tensor *t = &self->model.tensors[idx[i]];
        size_t nbytes = tensor_bytes(t);
        if ((size_t)view.len != nbytes) {
            PyErr_Format(PyExc_ValueError, "%s %d has %zd bytes, the model expects %zu",
                         to_arena ? "input" : "output", (int)i, view.len, nbytes);
            PyBuffer_Release(&view);
            Py_DECREF(fast);
            return -1;
        }
        if (to_arena) memcpy(self->arena + t->offset, view.buf, nbytes);
        else memcpy(view.buf, self->arena + t->offset, nbytes);
        PyBuffer_Release(&view);
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *Model_run(ModelObject *self, PyObject *args)
{
    PyObject *inputs, *outputs;
    if (!PyArg_ParseTuple(args, "OO", &inputs, &outputs)) return NULL;
    if (self->blob == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Model is not initialised");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Model.run is not reentrant (one thread at a time)");
        return NULL;
    }
    if (transfer(self, inputs, self->model.inputs, self->model.n_inputs, 1) < 0) return NULL;
    int rc;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = lk_run(&self->model, self->arena, self->scratch);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc == LK_ERR_INDEX) {
        PyErr_SetString(PyExc_IndexError, "gather index out of range");
        return NULL;
    }
    if (rc != LK_OK) {
        PyErr_Format(PyExc_RuntimeError, "lanthorn C kernel: %s (code %d)", status_text(rc), rc);
        return NULL;
    }
    if (transfer(self, outputs, self->model.outputs, self->model.n_outputs, 0) < 0) return NULL;
    Py_RETURN_NONE;
}

/* int8.quantize: x / scale (float32 division), clamp to [-128 - z, 127 - z] in float, round
 * half to even, + z. Returns 0, or -1 (nothing written past the first bad value matters:
 * the caller refuses the input) when x holds a NaN or an infinity, which numpy's path
 * refuses too. An input that is finite but overflows x / scale to infinity is clamped,
 * as in numpy. */
static int quantize_f32(const float *x, Py_ssize_t n, float scale, int32_t z, int8_t *q)
{
    const float lo = (float)(-128 - z), hi = (float)(127 - z);
    int bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    if (bad) return -1;
    for (Py_ssize_t i = 0; i < n; i++)   /* |v| <= 255 after the clamp: exact + z */
        q[i] = (int8_t)((int32_t)lk_round_even(lk_clampf(x[i] / scale, lo, hi)) + z);
    return 0;
}

/* int8.dequantize: float32(q - z) * scale. */
static void dequantize_f32(const int8_t *q, Py_ssize_t n, float scale, int32_t z, float *y)
{
    for (Py_ssize_t i = 0; i < n; i++) y[i] = (float)((int32_t)q[i] - z) * scale;
}

/* y -= max(y) over each row of `row` elements (the first steps of graph.softmax_f32: the
 * max is exact and so is numpy's float32 subtraction, so the bits are numpy's). */
static void subtract_row_max(float *y, Py_ssize_t n, Py_ssize_t row)
{
    for (Py_ssize_t r = 0; r + row <= n; r += row) {
        float m = y[r];
        for (Py_ssize_t i = 1; i < row; i++) m = y[r + i] > m ? y[r + i] : m;
        for (Py_ssize_t i = 0; i < row; i++) y[r + i] -= m;
    }
}

static int float_view(PyObject *obj, Py_buffer *view, size_t count, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "f") != 0 ||
        (size_t)view->len != count * 4u) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous float32 buffer of %zu values",
                     what, count);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *Model_run_float(ModelObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "run_float(x, out, softmax_row=0) takes 2 or 3 arguments");
        return NULL;
    }
    long row = 0;
    if (nargs == 3) {
        row = PyLong_AsLong(args[2]);
        if (row == -1 && PyErr_Occurred()) return NULL;
    }
    if (self->blob == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Model is not initialised");
        return NULL;
    }
    const lk_model *m = &self->model;
    if (m->n_inputs != 1 || m->n_outputs != 1 || m->tensors[m->inputs[0]].dtype != LK_INT8 ||
        m->tensors[m->outputs[0]].dtype != LK_INT8) {
        PyErr_SetString(PyExc_ValueError, "run_float needs a model with one int8 input and one "
                        "int8 output (use run)");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Model.run is not reentrant (one thread at a time)");
        return NULL;
    }
    const lk_tensor *ti = &m->tensors[m->inputs[0]], *to = &m->tensors[m->outputs[0]];
    size_t n_in = tensor_bytes(ti), n_out = tensor_bytes(to);
    if (row < 0 || (row > 0 && n_out % (size_t)row != 0)) {
        PyErr_SetString(PyExc_ValueError, "softmax_row must divide the output size");
        return NULL;
    }
    Py_buffer x, y;
    if (float_view(args[0], &x, n_in, 0, "x") < 0) return NULL;
    if (float_view(args[1], &y, n_out, 1, "out") < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    int rc = LK_OK, finite;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    finite = quantize_f32((const float *)x.buf, (Py_ssize_t)n_in, ti->scale, ti->zero_point,
                          (int8_t *)(self->arena + ti->offset)) == 0;
    if (finite) {
        rc = lk_run(m, self->arena, self->scratch);
        if (rc == LK_OK) {
            dequantize_f32((const int8_t *)(self->arena + to->offset), (Py_ssize_t)n_out,
                           to->scale, to->zero_point, (float *)y.buf);
            if (row > 0) subtract_row_max((float *)y.buf, (Py_ssize_t)n_out, row);
        }
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
    if (rc != LK_OK) {
        PyErr_Format(PyExc_RuntimeError, "lanthorn C kernel: %s (code %d)", status_text(rc), rc);
        return NULL;
    }
    return PyBool_FromLong(finite);
}

static PyObject *Model_get_variant(ModelObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromLong(self->model.variant);
}

static PyObject *Model_get_backend(ModelObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(lk_variant_name(self->model.variant));
}

static PyObject *Model_get_memory(ModelObject *self, void *closure)
{
    (void)closure;
    return Py_BuildValue("{s:n,s:n,s:n}", "arena", (Py_ssize_t)self->model.arena_size,
                         "packed", (Py_ssize_t)self->packed_size, "scratch",
                         (Py_ssize_t)self->scratch_size);
}

static PyMethodDef Model_methods[] = {
    {"run", (PyCFunction)Model_run, METH_VARARGS,
     "run(inputs, outputs): copy inputs into the arena, run every layer, fill outputs."},
    {"run_float", (PyCFunction)(void (*)(void))Model_run_float, METH_FASTCALL,
     "run_float(x, out, softmax_row=0) -> bool: float32 x -> quantize -> run -> dequantize "
     "into float32 out (then, if softmax_row > 0, subtract each row's max). False (and "
     "nothing run) when x holds NaN or infinity."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Model_getset[] = {
    {"variant", (getter)Model_get_variant, NULL, "kernel variant number (lk.h)", NULL},
    {"backend", (getter)Model_get_backend, NULL, "variant name, e.g. 'c-avx2'", NULL},
    {"memory", (getter)Model_get_memory, NULL, "bytes of arena, packed weights, scratch", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lanthorn.device.kernel_ext._lk.Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Model(blob, variant=-1): an LKB1 graph prepared for one kernel variant.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Model_init,
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_methods = Model_methods,
    .tp_getset = Model_getset,
};

static PyObject *py_best_variant(PyObject *mod, PyObject *noargs)
{
    (void)mod; (void)noargs;
    return PyLong_FromLong(lk_best_variant());
}

static PyObject *py_variant_supported(PyObject *mod, PyObject *arg)
{
    (void)mod;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    return PyBool_FromLong(v >= 0 && v < LK_N_VARIANTS && lk_variant_supported((int)v));
}

static PyObject *py_variant_name(PyObject *mod, PyObject *arg)
{
    (void)mod;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(lk_variant_name((int)v));
}

static PyMethodDef module_methods[] = {
    {"best_variant", py_best_variant, METH_NOARGS, "The fastest variant this CPU supports."},
    {"variant_supported", py_variant_supported, METH_O, "Whether a variant runs on this CPU."},
    {"variant_name", py_variant_name, METH_O, "Backend name of a variant number."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef lk_module = {
    PyModuleDef_HEAD_INIT, "_lk", "lanthorn's int8 C kernel (firmware/kernel).", -1,
    module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lk(void)
{
    if (PyType_Ready(&ModelType) < 0) return NULL;
    PyObject *m = PyModule_Create(&lk_module);
    if (m == NULL) return NULL;
    Py_INCREF(&ModelType);
    if (PyModule_AddObject(m, "Model", (PyObject *)&ModelType) < 0) {
        Py_DECREF(&ModelType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "SCALAR", LK_VARIANT_SCALAR);
    PyModule_AddIntConstant(m, "AVX2", LK_VARIANT_AVX2);
    PyModule_AddIntConstant(m, "NEON", LK_VARIANT_NEON);
    PyModule_AddIntConstant(m, "NEON_DOTPROD", LK_VARIANT_NEON_DOTPROD);
    PyModule_AddIntConstant(m, "N_VARIANTS", LK_N_VARIANTS);
    return m;
}
