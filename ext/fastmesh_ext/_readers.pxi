# Shared by every fastmesh_ext module (`include "_readers.pxi"`): C fast paths of the
# field readers of fastmesh.config._fields. Well-formed input never leaves C-level code;
# anything else is handed to the Python reader, which records the identical Problem.
# Needs `_py` (the module fastmesh.config._fields) in scope.

cdef object _parse_duration_ms = _py.parse_duration_ms
# Memo of well-formed durations: configs repeat the same few ("1s", "15s").
cdef dict _durations = {}

# ---- field readers: C fast path for the well-formed case, else the Python reader ----

cdef inline object _get(object doc, str key):
    if type(doc) is dict:
        return (<dict>doc).get(key)
    return doc.get(key)


cdef inline str at(str path, str key):
    return path + "." + key if path else key


cdef inline str item(str path, Py_ssize_t index):
    return f"{path}[{index}]"


cdef inline object obj(object issues, object value, str path, frozenset allowed):
    if type(value) is dict and allowed.issuperset(<dict>value):
        return value
    return _py.obj(issues, value, path, allowed)


cdef inline object get_str(object issues, object doc, str key, str path,
                           bint required=False, bint non_empty=False):
    cdef object value = _get(doc, key)
    if type(value) is str and (not non_empty or value):
        return value
    if value is None and not required:
        return None
    return _py.get_str(issues, doc, key, path, required=required, non_empty=non_empty)


cdef inline object get_bool(object issues, object doc, str key, str path):
    cdef object value = _get(doc, key)
    if value is None or value is True or value is False:
        return value
    return _py.get_bool(issues, doc, key, path)


cdef inline object get_int(object issues, object doc, str key, str path,
                           object lo, object hi, bint required=False):
    cdef object value = _get(doc, key)
    if type(value) is int and lo <= value <= hi:
        return value
    if value is None and not required:
        return None
    return _py.get_int(issues, doc, key, path, lo, hi, required=required)


cdef inline object get_duration_ms(object issues, object doc, str key, str path):
    cdef object value = _get(doc, key)
    if value is None:
        return None
    if type(value) is str:
        ms = _durations.get(value)
        if ms is not None:
            return ms
        ms = _parse_duration_ms(value)
        if ms is not None:
            if len(_durations) < 4096:
                _durations[value] = ms
            return ms
    return _py.get_duration_ms(issues, doc, key, path)


cdef inline object get_list(object issues, object doc, str key, str path, bint required=False):
    cdef object value = _get(doc, key)
    if type(value) is list:
        return value
    if value is None and not required:
        return ()
    return _py.get_list(issues, doc, key, path, required=required)


cdef inline object get_map(object issues, object doc, str key, str path, frozenset allowed,
                           bint required=False):
    cdef object value = _get(doc, key)
    if value is None:
        if required:
            issues.add(at(path, key), "required field is missing")
        return None
    return obj(issues, value, at(path, key), allowed)
