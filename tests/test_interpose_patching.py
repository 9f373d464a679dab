"""Patcher: attribute patches and patches of modules imported later are undone by restore()."""

from __future__ import annotations

import sys

from interpose.patching import Patcher


def _module_file(tmp_path, name: str) -> None:
    (tmp_path / f"{name}.py").write_text("def f():\n    return 'orig'\n\ndef g():\n    return f()\n")


def _patch_f(p: Patcher, calls: list):
    def hook(mod):
        calls.append(mod.__name__)
        p.set(mod, "f", lambda: "patched")

    return hook


def test_after_import_patches_a_module_imported_later_and_restore_undoes_it(tmp_path, monkeypatch):
    name = "phantora_test_later_mod"
    _module_file(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    p, calls = Patcher(), []
    p.after_import(name, _patch_f(p, calls))
    assert calls == [] and name not in sys.modules
    mod = __import__(name)
    assert calls == [name] and mod.g() == "patched"  # module globals see the patch
    loader = mod.__loader__
    assert "exec_module" not in vars(loader)  # the loader's own exec_module again
    p.restore()
    assert mod.g() == "orig"
    assert not any(type(f).__name__ == "_PostImportFinder" for f in sys.meta_path)
    monkeypatch.delitem(sys.modules, name)


def test_after_import_of_an_imported_module_patches_at_once(tmp_path, monkeypatch):
    name = "phantora_test_early_mod"
    _module_file(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = __import__(name)
    p, calls = Patcher(), []
    n_finders = len(sys.meta_path)
    p.after_import(name, _patch_f(p, calls))
    assert calls == [name] and mod.g() == "patched" and len(sys.meta_path) == n_finders
    p.restore()
    assert mod.g() == "orig"
    monkeypatch.delitem(sys.modules, name)


def test_after_import_hook_is_dropped_when_restored_before_the_import(tmp_path, monkeypatch):
    name = "phantora_test_never_mod"
    _module_file(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    p, calls = Patcher(), []
    p.after_import(name, _patch_f(p, calls))
    p.restore()
    mod = __import__(name)
    assert calls == [] and mod.g() == "orig"
    monkeypatch.delitem(sys.modules, name)


def test_config_module_entries_are_restored_not_deleted():
    """torch's config modules serve their entries through __getattr__ (not __dict__): restoring must
    put the old value back, not delete the entry (a second compile would find it gone)."""
    import torch._inductor.config as inductor_config

    from interpose.patching import Patcher

    before = (inductor_config.compile_threads, inductor_config.triton.cudagraph_trees)
    p = Patcher()
    p.set(inductor_config, "compile_threads", 1)
    p.set(inductor_config.triton, "cudagraph_trees", not before[1])
    assert inductor_config.triton.cudagraph_trees is (not before[1])
    p.restore()
    assert (inductor_config.compile_threads, inductor_config.triton.cudagraph_trees) == before
