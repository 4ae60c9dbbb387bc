/*
 * _lk: CPython glue for the lanthorn C kernel (firmware/kernel).
 *
 * The kernel itself never allocates; this glue owns every buffer: an aligned copy of the
 * blob, the tensor/layer structs, packed weights, scratch and the activation arena, all
 * made once in Model(). Model.run() is then one call per inference: copy inputs into the
 * arena, run every layer with the GIL released, copy outputs out.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "lk.h"

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
