/*
 * _lk: CPython glue for the lanthorn C kernel (firmware/kernel).
 *
 * The kernel itself never allocates; this glue owns every buffer: an aligned copy of the
 * blob, the tensor/layer structs, packed weights, scratch and the activation arena, all
 * made once in Model(). Model.run() is then one call per inference: copy inputs into the
 * arena, run every layer with the GIL released, copy outputs out. Model.call() and
 * call_raw() are the calls a user makes (model(x), run_quantized(x)) as ONE C call each:
 * the input converted straight into the arena with exactly lanthorn.device.int8's float32
 * operations, the output dequantized or softmaxed, so a 25k-MAC model costs one C call
 * instead of Python and numpy calls around it that took longer than the kernel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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
    /* The thin call (set_call): one int8-or-index input, one int8 output. */
    int call_ready, release_gil, softmax_row, n_shapes;
    int ndims[2];
    Py_ssize_t shapes[2][LK_MAX_DIMS];   /* accepted input shapes (tensor, input_spec) */
    PyObject *ndarray, *empty;           /* numpy.ndarray, numpy.empty */
    PyObject *f_args[2], *q_args[2];     /* (out shape, float32), (out shape, int8) */
    float exp_table[256];                /* graph.softmax_table: exp(-d * scale) */
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
    Py_XDECREF(self->ndarray);
    Py_XDECREF(self->empty);
    for (int i = 0; i < 2; i++) {
        Py_XDECREF(self->f_args[i]);
        Py_XDECREF(self->q_args[i]);
    }
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
#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__) && defined(__GNUC__) && \
    !defined(__clang__)
/* One build, the widest vector unit the CPU has (GCC picks at load time, through an ifunc):
 * the same IEEE division and rounding on 16, 8 or 4 lanes. A 3072-value input (cnn2d_32)
 * spent ~1 us here on the SSE2 baseline. */
#define LK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LK_CLONES
#endif
LK_CLONES
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

/* ------------------------------------------------------------------ the thin call
 *
 * model(x) and run_quantized(x) for a one-input, one-output model as ONE C call with
 * no Python around the kernel but the argument itself: check x (exact numpy array,
 * C-contiguous, an accepted shape, a dtype this path reads), convert it into the arena
 * (quantize floats as int8.quantize, cast integers as numpy's unsafe cast does), run,
 * and return a fresh output array (dequantized, or graph.softmax_f32 from the table of
 * exp values made by numpy once at load, so every backend returns the same bits).
 * Anything else -- another type, a strided view, NaN -- returns NotImplemented and the
 * Python runtime takes its checked path, which reshapes or raises the one-line error.
 */

static int dims_match(const ModelObject *self, const Py_buffer *v)
{
    for (int s = 0; s < self->n_shapes; s++) {
        if (v->ndim != self->ndims[s]) continue;
        int ok = 1;
        for (int d = 0; d < v->ndim && ok; d++) ok = v->shape[d] == self->shapes[s][d];
        if (ok) return 1;
    }
    return 0;
}

/* Element kind of a native numpy buffer format: 'f' float32, 'd' float64, 'i' an integer
 * of `*size` bytes (signed), 'u' unsigned, 0 otherwise. */
static char kind_of(const Py_buffer *v, int *size)
{
    const char *f = v->format;
    if (f == NULL || f[0] == 0 || f[1] != 0) return 0;
    *size = (int)v->itemsize;
    switch (f[0]) {
    case 'f': return v->itemsize == 4 ? 'f' : 0;
    case 'd': return v->itemsize == 8 ? 'd' : 0;
    case 'b': case 'h': case 'i': case 'l': case 'q': return 'i';
    case 'B': case 'H': case 'I': case 'L': case 'Q': return 'u';
    default: return 0;
    }
}

static int64_t int_at(const void *buf, Py_ssize_t i, char kind, int size)
{
    if (kind == 'i') {
        switch (size) {
        case 1: return ((const int8_t *)buf)[i];
        case 2: return ((const int16_t *)buf)[i];
        case 4: return ((const int32_t *)buf)[i];
        default: return ((const int64_t *)buf)[i];
        }
    }
    switch (size) {
    case 1: return ((const uint8_t *)buf)[i];
    case 2: return ((const uint16_t *)buf)[i];
    case 4: return ((const uint32_t *)buf)[i];
    default: return (int64_t)((const uint64_t *)buf)[i];
    }
}

/* x -> the arena's input tensor. raw: run_quantized (int8 as is, or indices); else model(x)
 * (numbers quantized as int8.quantize, or indices). 1 done, 0 not this path's input. */
static int load_input(ModelObject *self, const Py_buffer *v, int raw)
{
    const lk_model *m = &self->model;
    const lk_tensor *t = &m->tensors[m->inputs[0]];
    const Py_ssize_t n = v->len / (v->itemsize ? v->itemsize : 1);
    int size = 0;
    const char kind = kind_of(v, &size);
    uint8_t *dst = self->arena + t->offset;
    if (kind == 0 || (size_t)n != tensor_bytes(t) / (t->dtype == LK_INT32 ? 4u : 1u)) return 0;
    if (t->dtype == LK_INT32) {        /* indices: np.copyto(q, x, casting="unsafe") */
        if (kind != 'i' && kind != 'u') return 0;
        int32_t *q = (int32_t *)(void *)dst;
        for (Py_ssize_t i = 0; i < n; i++) q[i] = (int32_t)(uint32_t)(uint64_t)int_at(v->buf, i, kind, size);
        return 1;
    }
    if (raw) {                         /* run_quantized: int8 only */
        if (!(kind == 'i' && size == 1)) return 0;
        memcpy(dst, v->buf, (size_t)n);
        return 1;
    }
    if (kind == 'f') return quantize_f32((const float *)v->buf, n, t->scale, t->zero_point,
                                         (int8_t *)dst) == 0;
    /* float64 and integers: numpy casts x to float32 first (casting="unsafe"), then divides */
    const float lo = (float)(-128 - t->zero_point), hi = (float)(127 - t->zero_point);
    for (Py_ssize_t i = 0; i < n; i++) {
        const float f = kind == 'd' ? (float)((const double *)v->buf)[i]
                      : kind == 'i' ? (float)int_at(v->buf, i, kind, size)
                                    : (float)(uint64_t)int_at(v->buf, i, kind, size);
        if (!isfinite(f)) return 0;    /* NaN/inf (or a float64 beyond float32): checked path */
        ((int8_t *)dst)[i] = (int8_t)((int32_t)lk_round_even(lk_clampf(f / t->scale, lo, hi)) + t->zero_point);
    }
    return 1;
}

/* graph.softmax_f32 over rows of `row` int8 values: e = table[max - q], the sum added left
 * to right in float32 (np.add.accumulate's order), e / sum. */
static void softmax_rows(const int8_t *q, Py_ssize_t n, Py_ssize_t row, const float *table, float *y)
{
    for (Py_ssize_t r = 0; r + row <= n; r += row) {
        int32_t mx = q[r];
        for (Py_ssize_t i = 1; i < row; i++) mx = q[r + i] > mx ? q[r + i] : mx;
        float sum = 0.0f;
        for (Py_ssize_t i = 0; i < row; i++) {
            y[r + i] = table[mx - q[r + i]];
            sum += y[r + i];
        }
        for (Py_ssize_t i = 0; i < row; i++) y[r + i] /= sum;
    }
}

static PyObject *thin_call(ModelObject *self, PyObject *x, int raw)
{
    if (!self->call_ready || Py_TYPE(x) != (PyTypeObject *)self->ndarray || self->busy)
        Py_RETURN_NOTIMPLEMENTED;
    Py_buffer v;
    if (PyObject_GetBuffer(x, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();                 /* a strided view: the checked path copies it */
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (!dims_match(self, &v) || !load_input(self, &v, raw)) {
        PyBuffer_Release(&v);
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyBuffer_Release(&v);
    PyObject *out = PyObject_Vectorcall(self->empty, raw ? self->q_args : self->f_args, 2, NULL);
    if (out == NULL) return NULL;
    Py_buffer y;
    if (PyObject_GetBuffer(out, &y, PyBUF_WRITABLE) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    const lk_model *m = &self->model;
    const lk_tensor *to = &m->tensors[m->outputs[0]];
    const int8_t *q = (const int8_t *)(self->arena + to->offset);
    const Py_ssize_t n = (Py_ssize_t)tensor_bytes(to);
    int rc;
    self->busy = 1;
    if (self->release_gil) {
        Py_BEGIN_ALLOW_THREADS
        rc = lk_run(m, self->arena, self->scratch);
        Py_END_ALLOW_THREADS
    } else {
        rc = lk_run(m, self->arena, self->scratch);
    }
    self->busy = 0;
    if (rc == LK_OK) {
        if (raw) memcpy(y.buf, q, (size_t)n);
        else if (self->softmax_row > 0) softmax_rows(q, n, self->softmax_row, self->exp_table, (float *)y.buf);
        else dequantize_f32(q, n, to->scale, to->zero_point, (float *)y.buf);
    }
    PyBuffer_Release(&y);
    if (rc != LK_OK) {
        Py_DECREF(out);
        if (rc == LK_ERR_INDEX) PyErr_SetString(PyExc_IndexError, "gather index out of range");
        else PyErr_Format(PyExc_RuntimeError, "lanthorn C kernel: %s (code %d)", status_text(rc), rc);
        return NULL;
    }
    return out;
}

static PyObject *Model_call(ModelObject *self, PyObject *x) { return thin_call(self, x, 0); }
static PyObject *Model_call_raw(ModelObject *self, PyObject *x) { return thin_call(self, x, 1); }

static int read_shape(PyObject *tup, Py_ssize_t *shape, int *ndim)
{
    if (!PyTuple_Check(tup) || PyTuple_GET_SIZE(tup) > LK_MAX_DIMS) {
        PyErr_SetString(PyExc_ValueError, "a shape must be a tuple of at most 6 ints");
        return -1;
    }
    *ndim = (int)PyTuple_GET_SIZE(tup);
    for (int d = 0; d < *ndim; d++) {
        shape[d] = PyLong_AsSsize_t(PyTuple_GET_ITEM(tup, d));
        if (shape[d] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *Model_set_call(ModelObject *self, PyObject *args)
{
    PyObject *ndarray, *empty, *shapes, *out_shape, *f32, *i8, *table;
    int row, release;
    if (!PyArg_ParseTuple(args, "OOO!O!OOOip", &ndarray, &empty, &PyTuple_Type, &shapes,
                          &PyTuple_Type, &out_shape, &f32, &i8, &table, &row, &release))
        return NULL;
    const lk_model *m = &self->model;
    if (self->blob == NULL || m->n_inputs != 1 || m->n_outputs != 1 ||
        m->tensors[m->outputs[0]].dtype != LK_INT8) {
        PyErr_SetString(PyExc_ValueError, "the thin call needs one input and one int8 output");
        return NULL;
    }
    if (PyTuple_GET_SIZE(shapes) < 1 || PyTuple_GET_SIZE(shapes) > 2) {
        PyErr_SetString(PyExc_ValueError, "one or two accepted input shapes");
        return NULL;
    }
    for (Py_ssize_t s = 0; s < PyTuple_GET_SIZE(shapes); s++)
        if (read_shape(PyTuple_GET_ITEM(shapes, s), self->shapes[s], &self->ndims[s]) < 0) return NULL;
    self->n_shapes = (int)PyTuple_GET_SIZE(shapes);
    const size_t n_out = tensor_bytes(&m->tensors[m->outputs[0]]);
    if (row < 0 || (row > 0 && n_out % (size_t)row != 0)) {
        PyErr_SetString(PyExc_ValueError, "softmax_row must divide the output size");
        return NULL;
    }
    if (row > 0) {
        Py_buffer tb;
        if (float_view(table, &tb, 256, 0, "table") < 0) return NULL;
        memcpy(self->exp_table, tb.buf, sizeof self->exp_table);
        PyBuffer_Release(&tb);
    }
    self->softmax_row = row;
    self->release_gil = release;
    PyObject *old[6] = {self->ndarray, self->empty, self->f_args[0], self->f_args[1],
                        self->q_args[0], self->q_args[1]};
    Py_INCREF(ndarray); Py_INCREF(empty); Py_INCREF(out_shape); Py_INCREF(out_shape);
    Py_INCREF(f32); Py_INCREF(i8);
    self->ndarray = ndarray;
    self->empty = empty;
    self->f_args[0] = out_shape;
    self->f_args[1] = f32;
    self->q_args[0] = out_shape;
    self->q_args[1] = i8;
    for (int i = 0; i < 6; i++) Py_XDECREF(old[i]);
    self->call_ready = 1;
    Py_RETURN_NONE;
}

static double now_s(void)
{
    struct timespec ts;
#if defined(CLOCK_MONOTONIC)
    clock_gettime(CLOCK_MONOTONIC, &ts);
#else
    timespec_get(&ts, TIME_UTC);
#endif
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* time_kernel(x, n): seconds per lk_run over n runs back to back, x (the input tensor's
 * bytes: int8 values or int32 indices) copied into the arena before each run -- the
 * planner may reuse the input's bytes for later tensors. The bare kernel (no Python, no
 * input conversion) for `lanthorn bench`'s call-overhead figure. */
static PyObject *Model_time_kernel(ModelObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "time_kernel(x, n) takes 2 arguments");
        return NULL;
    }
    const long n = PyLong_AsLong(args[1]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || self->blob == NULL || self->busy || self->model.n_inputs != 1) {
        PyErr_SetString(PyExc_ValueError, "time_kernel needs n >= 1 and an idle one-input model");
        return NULL;
    }
    const lk_tensor *t = &self->model.tensors[self->model.inputs[0]];
    const size_t n_in = tensor_bytes(t);
    Py_buffer x;
    if (PyObject_GetBuffer(args[0], &x, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if ((size_t)x.len != n_in) {
        PyErr_Format(PyExc_ValueError, "x has %zd bytes, the input has %zu", x.len, n_in);
        PyBuffer_Release(&x);
        return NULL;
    }
    int rc = LK_OK;
    self->busy = 1;
    const double t0 = now_s();
    for (long i = 0; i < n && rc == LK_OK; i++) {
        memcpy(self->arena + t->offset, x.buf, n_in);
        rc = lk_run(&self->model, self->arena, self->scratch);
    }
    const double t1 = now_s();
    self->busy = 0;
    PyBuffer_Release(&x);
    if (rc != LK_OK) {
        if (rc == LK_ERR_INDEX) PyErr_SetString(PyExc_IndexError, "gather index out of range");
        else PyErr_Format(PyExc_RuntimeError, "lanthorn C kernel: %s (code %d)", status_text(rc), rc);
        return NULL;
    }
    return PyFloat_FromDouble((t1 - t0) / (double)n);
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
    {"call", (PyCFunction)Model_call, METH_O,
     "call(x): model(x) in one C call -> float32 output, or NotImplemented (take the checked path)."},
    {"call_raw", (PyCFunction)Model_call_raw, METH_O,
     "call_raw(x): run_quantized(x) in one C call -> int8 output, or NotImplemented."},
    {"set_call", (PyCFunction)Model_set_call, METH_VARARGS,
     "set_call(ndarray, empty, shapes, out_shape, float32, int8, exp_table, softmax_row, "
     "release_gil): enable call/call_raw."},
    {"time_kernel", (PyCFunction)(void (*)(void))Model_time_kernel, METH_FASTCALL,
     "time_kernel(x, n) -> seconds per lk_run, x (the input's bytes) copied in before each."},
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
    PyModule_AddIntConstant(m, "AVX_VNNI", LK_VARIANT_AVX_VNNI);
    PyModule_AddIntConstant(m, "AVX512_VNNI", LK_VARIANT_AVX512_VNNI);
    PyModule_AddIntConstant(m, "N_VARIANTS", LK_N_VARIANTS);
    return m;
}
