"""The judge of assert tests and the program's side of its channel (standard library only; the sandboxed
harness imports this file, next to wire.py).

The judge runs HumanEval's check(candidate) or MBPP's asserts in a process of its own, forked by the harness
before the program starts. It reaches the program only through requests over a socket (a name's value, a
call, an attribute, iteration); arguments go out and results come back as data (`wire.py`), so what the
test code compares are builtin values. An object that is not data arrives as a `Remote`, which forwards
calls, attributes and iteration and nothing else: it equals only itself and has no truth value. The test
code reads builtins, and the standard-library modules it uses, from the judge's own interpreter; only the
function under test (an entry point, or MBPP's first called name) may carry a builtin's name.
"""

import ast
import builtins
import json
import types

import wire

MAX_MESSAGE = 64 * 1024 * 1024  # one judge <-> program message


def send(sock, message):
    sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


class Lines:
    """Newline-delimited messages from a socket, each at most MAX_MESSAGE bytes."""

    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def read(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_MESSAGE:
                raise wire.WireError("message too long")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


def serve(sock, env):
    """The program's side: answer the judge's requests until it hangs up."""
    objects, ids = [], {}

    def register(obj):
        key = id(obj)
        if key not in ids:
            ids[key] = len(objects)
            objects.append(obj)
        return [ids[key], type(obj).__name__]

    def resolve(ref):
        return objects[ref[0]]

    lines = Lines(sock)
    while True:
        try:
            request = json.loads(lines.read())
        except EOFError:
            return
        op = request["op"]
        try:
            if op == "globals":
                value = {name: env[name] for name in request["names"] if name in env}
            else:
                target = resolve(request["ref"])
                if op == "call":
                    args = wire.decode(request["args"], resolve)
                    kwargs = wire.decode(request["kwargs"], resolve)
                    value = target(*args, **kwargs)
                elif op == "getattr":
                    value = getattr(target, request["name"])
                elif op == "setattr":
                    value = setattr(target, request["name"], wire.decode(request["value"], resolve))
                elif op == "iter":
                    value = iter(target)
                elif op == "next":
                    try:
                        value = next(target)
                    except StopIteration:
                        send(sock, {"stop": True})
                        continue
                else:  # len, str, repr
                    value = {"len": len, "str": str, "repr": repr}[op](target)
            reply = {"ok": wire.encode(value, register)}
        except BaseException as e:  # noqa: BLE001 - the program's exception travels to the test code
            reply = {"raise": [type(e).__name__, str(e)[:500]]}
        send(sock, reply)


class ProgramGone(Exception):
    """The program's process exited or broke the protocol during a test."""


class Remote:
    """The judge's handle on one object of the program. It forwards calls, attributes and iteration, and
    nothing else: it equals only itself, and asking whether it is true is an error (an object that is not
    data cannot answer the test's questions)."""

    __slots__ = ("_rpc", "_ref")

    def __init__(self, rpc, ref):
        object.__setattr__(self, "_rpc", rpc)
        object.__setattr__(self, "_ref", ref)

    def __call__(self, *args, **kwargs):
        return self._rpc("call", self._ref, args=wire.encode(list(args), self._rpc.ref_of),
                         kwargs=wire.encode(kwargs, self._rpc.ref_of))

    def __getattr__(self, name):
        return self._rpc("getattr", self._ref, name=name)

    def __setattr__(self, name, value):
        self._rpc("setattr", self._ref, name=name, value=wire.encode(value, self._rpc.ref_of))

    def __iter__(self):
        iterator = self._rpc("iter", self._ref)
        while True:
            try:
                yield self._rpc("next", iterator._ref)
            except StopIteration:
                return

    def __len__(self):
        return self._rpc("len", self._ref)

    def __str__(self):
        return self._rpc("str", self._ref)

    def __repr__(self):
        return f"<program's {self._ref[1]}>"

    def __bool__(self):
        raise TypeError(f"the program returned a {self._ref[1]}, which is not plain data")

    __hash__ = object.__hash__


class Rpc:
    def __init__(self, sock):
        self.sock, self.lines = sock, Lines(sock)

    def ref_of(self, obj):
        if type(obj) is Remote:
            return object.__getattribute__(obj, "_ref")
        raise wire.WireError(f"a {type(obj).__name__} cannot be passed to the program")

    def resolve(self, ref):
        return Remote(self, ref)

    def receive(self):
        try:
            return json.loads(self.lines.read())
        except EOFError:
            raise ProgramGone("the program exited during the test") from None
        except (ValueError, wire.WireError) as e:
            raise ProgramGone(f"the program broke the protocol: {e}") from None

    def __call__(self, op, ref=None, **fields):
        try:
            send(self.sock, {"op": op, "ref": ref, **fields})
        except OSError:
            raise ProgramGone("the program exited during the test") from None
        reply = self.receive()
        if not isinstance(reply, dict):
            raise ProgramGone("the program broke the protocol")
        if "ok" in reply:
            return wire.decode(reply["ok"], self.resolve)
        if reply.get("stop") is True and op == "next":
            raise StopIteration
        if "raise" in reply and isinstance(reply["raise"], list) and len(reply["raise"]) == 2:
            raise _exception(*reply["raise"])
        raise ProgramGone("the program broke the protocol")


class ProgramError(Exception):
    """An exception of a type the judge does not know, raised by the program."""


def _exception(name, message):
    """The program's exception as one of the judge's own (a builtin type by name, else ProgramError)."""
    kind = getattr(builtins, name, None) if isinstance(name, str) else None
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        return ProgramError(f"{name}: {message}")
    try:
        return kind(str(message))
    except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError wants 5 arguments
        return ProgramError(f"{name}: {message}")


def _names_wanted(test_tree, entry_point):
    """The program's names the test code may use: every name it reads, except builtins (a program that
    redefines `abs` or `set` does not redefine them for the test), plus the function under test, which
    may have a builtin's name (MBPP's `sum`). Without an entry point, the function under test is the first
    called name that is not a builtin (else the first called name)."""
    loaded = {n.id for n in ast.walk(test_tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if entry_point is None:
        called = [n.func.id for n in ast.walk(test_tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        plain = [name for name in called if not wire.is_builtin_name(name)]
        entry_point = (plain or called or [None])[0]
    wanted = {name for name in loaded if not wire.is_builtin_name(name) and not name.startswith("__")}
    if entry_point:
        wanted.add(entry_point)
    return sorted(wanted), entry_point


def judge_test(job, test, rpc):
    first = rpc.receive()
    if not isinstance(first, dict) or "ready" not in first:
        load_error = first.get("load_error") if isinstance(first, dict) else None
        if isinstance(load_error, list) and load_error and load_error[0] in ("compile_error", "memory_limit"):
            return {"status": load_error[0], "detail": str(load_error[1:])[:500]}
        return {"status": "runtime_error", "detail": f"the program did not load: {str(load_error)[:500]}"}
    try:
        tree = ast.parse(test, "test.py")
    except SyntaxError as e:
        return {"status": "runtime_error", "detail": f"the test code does not compile: {e}"}
    names, entry_point = _names_wanted(tree, job.get("entry_point"))
    env = {"__name__": "__test__", "__builtins__": builtins}
    provided = rpc("globals", names=names)
    if not isinstance(provided, dict):
        return {"status": "program_gone", "detail": "the program broke the protocol"}
    env.update({name: value for name, value in provided.items() if name in names})  # nothing unasked
    try:
        exec(compile(tree, "test.py", "exec"), env)
        check = env.get("check")
        if job.get("entry_point") and type(check) is types.FunctionType and check.__code__.co_filename == "test.py":
            check(env[job["entry_point"]])  # HumanEval: the test code's own check(), never the program's
    except AssertionError as e:
        return {"status": "wrong_answer", "detail": f"assertion failed: {e!r}"[:500]}
    except MemoryError:
        return {"status": "memory_limit", "detail": "MemoryError"}
    except ProgramGone as e:
        return {"status": "program_gone", "detail": str(e)}
    except KeyError as e:
        if e.args == (job.get("entry_point"),):
            return {"status": "runtime_error", "detail": f"the program does not define {e.args[0]!r}"}
        return {"status": "runtime_error", "detail": f"KeyError: {e}"[:500]}
    except BaseException as e:  # noqa: BLE001
        return {"status": "runtime_error", "detail": f"{type(e).__name__}: {e}"[:500]}
    return {"status": "ok"}
