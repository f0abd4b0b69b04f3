"""Run CPU-heavy calls (bcrypt, long tiktoken encodes) in gevent's thread pool when the process is
monkey-patched, so they never stall the other greenlets; inline otherwise."""


def run(fn, *args):
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return fn(*args)
    if monkey.is_module_patched("socket"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)
