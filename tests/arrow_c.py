"""A consumer of the Arrow C stream interface written with ctypes alone: it
drives a capsule's callbacks the way a C library does, so the tests (and the
valgrind workload in .ci/asan.sh) check custlist's release callbacks without
any Arrow library in between."""
import ctypes
from ctypes import POINTER, addressof, c_char_p, c_int, c_int64, c_void_p


class ArrowSchema(ctypes.Structure):
    pass


ArrowSchema._fields_ = [
    ("format", c_char_p), ("name", c_char_p), ("metadata", c_char_p), ("flags", c_int64),
    ("n_children", c_int64), ("children", POINTER(POINTER(ArrowSchema))),
    ("dictionary", POINTER(ArrowSchema)), ("release", c_void_p), ("private_data", c_void_p)]


class ArrowArray(ctypes.Structure):
    pass


ArrowArray._fields_ = [
    ("length", c_int64), ("null_count", c_int64), ("offset", c_int64), ("n_buffers", c_int64),
    ("n_children", c_int64), ("buffers", POINTER(c_void_p)),
    ("children", POINTER(POINTER(ArrowArray))), ("dictionary", POINTER(ArrowArray)),
    ("release", c_void_p), ("private_data", c_void_p)]


class ArrowArrayStream(ctypes.Structure):
    _fields_ = [("get_schema", c_void_p), ("get_next", c_void_p), ("get_last_error", c_void_p),
                ("release", c_void_p), ("private_data", c_void_p)]


_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = c_void_p
_get_pointer.argtypes = [ctypes.py_object, c_char_p]
_CALL = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)        # releases the GIL, as C consumers do
_RELEASE = ctypes.CFUNCTYPE(None, c_void_p)
_ERROR = ctypes.CFUNCTYPE(c_char_p, c_void_p)


def schema_tree(s):
    """(name, format, children) of an ArrowSchema."""
    kids = [schema_tree(s.children[i].contents) for i in range(s.n_children)]
    if s.dictionary:
        kids.append(("<dictionary>",) + schema_tree(s.dictionary.contents)[1:])
    return (s.name.decode(), s.format.decode(), kids)


def drain(capsule, batches=None, move=False):
    """Read up to `batches` batches; returns (schema tree, row counts, last
    error or None).  The stream stays in the capsule (its destructor releases
    it) unless `move`, when it is released here as a consumer would."""
    stream = ArrowArrayStream.from_address(_get_pointer(capsule, b"arrow_array_stream"))
    if move:                                 # take it, as a consumer does
        taken = ArrowArrayStream()
        ctypes.memmove(addressof(taken), addressof(stream), ctypes.sizeof(stream))
        stream.release = None
        stream = taken
    schema = ArrowSchema()
    assert _CALL(stream.get_schema)(addressof(stream), addressof(schema)) == 0
    tree = schema_tree(schema)
    _RELEASE(schema.release)(addressof(schema))
    assert not schema.release
    rows, error = [], None
    while batches is None or len(rows) < batches:
        array = ArrowArray()
        rc = _CALL(stream.get_next)(addressof(stream), addressof(array))
        if rc != 0:
            error = _ERROR(stream.get_last_error)(addressof(stream)).decode()
            assert not array.release
            break
        if not array.release:
            break
        rows.append(array.length)
        if array.n_children and len(rows) % 2:
            # a consumer may move a child out and release it on its own
            child = ArrowArray()
            ctypes.memmove(addressof(child), addressof(array.children[0].contents),
                           ctypes.sizeof(child))
            array.children[0].contents.release = None
            _RELEASE(child.release)(addressof(child))
        _RELEASE(array.release)(addressof(array))
        assert not array.release
    if move:
        _RELEASE(stream.release)(addressof(stream))
        assert not stream.release
    return tree, rows, error
