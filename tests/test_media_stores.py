"""The media store port's contract, run against the folder and the memory store."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from membership_core.adapters.media_folder import FolderMediaStore
from membership_core.adapters.media_memory import MemoryMediaStore
from membership_core.errors import ConfigurationError, StorageError, ValidationError
from membership_core.plugins import builtin
from membership_core.plugins.registry import AdapterRegistry
from membership_core.ports.media import MAX_KEY_LENGTH, MediaStore, check_key

KEY = "default/branding/logo-3f2a9c.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(params=["folder", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStore:
    if request.param == "folder":
        return FolderMediaStore(tmp_path / "media", base_url="https://cdn.example/media/")
    return MemoryMediaStore("https://cdn.example/media/")


def builtin_registry() -> AdapterRegistry:
    registry = AdapterRegistry()
    builtin.membership_register_adapters(registry)
    return registry


# -- the contract --------------------------------------------------------------


def test_put_returns_the_url_and_get_returns_the_bytes(store: MediaStore) -> None:
    url = store.put(KEY, PNG_SIGNATURE + b"logo", "image/png")
    assert url == "https://cdn.example/media/default/branding/logo-3f2a9c.png"
    assert store.url(KEY) == url
    assert store.get(KEY) == PNG_SIGNATURE + b"logo"


def test_get_of_a_key_never_put_is_none(store: MediaStore) -> None:
    assert store.get(KEY) is None
    store.put("default/branding/other.png", b"x", "image/png")
    assert store.get(KEY) is None
    assert store.get("default/branding") is None  # a "folder" is not a file


def test_url_does_not_need_the_file(store: MediaStore) -> None:
    assert store.url("a/b.png") == "https://cdn.example/media/a/b.png"
    assert store.get("a/b.png") is None


def test_put_overwrites_and_the_same_bytes_again_change_nothing(store: MediaStore) -> None:
    store.put(KEY, b"first", "image/png")
    assert store.put(KEY, b"second", "image/png") == store.url(KEY)
    assert store.get(KEY) == b"second"
    assert store.put(KEY, b"second", "image/png") == store.url(KEY)
    assert store.get(KEY) == b"second"


def test_delete_removes_only_that_key(store: MediaStore) -> None:
    store.put(KEY, b"logo", "image/png")
    store.put("default/branding/favicon.ico", b"icon", "image/x-icon")
    store.delete(KEY)
    assert store.get(KEY) is None
    assert store.get("default/branding/favicon.ico") == b"icon"
    store.put(KEY, b"again", "image/png")  # a deleted key can be used again
    assert store.get(KEY) == b"again"


def test_delete_of_a_missing_key_is_not_an_error(store: MediaStore) -> None:
    store.delete(KEY)
    store.delete("never/was/here.png")
    store.put(KEY, b"logo", "image/png")
    store.delete(KEY)
    store.delete(KEY)
    assert store.get(KEY) is None


def test_binary_data_round_trips_exactly(store: MediaStore) -> None:
    data = bytes(range(256)) * 64 + b"\r\n\n\r\x00\x1a"
    store.put("t/all-bytes.bin", data, "application/octet-stream")
    assert store.get("t/all-bytes.bin") == data
    store.put("t/empty.bin", b"", "application/octet-stream")
    assert store.get("t/empty.bin") == b""


def test_bytearray_and_memoryview_are_accepted(store: MediaStore) -> None:
    data: Any = bytearray(b"ab")
    store.put("a.bin", data, "application/octet-stream")
    assert store.get("a.bin") == b"ab"
    data = memoryview(b"cd")
    store.put("b.bin", data, "application/octet-stream")
    assert store.get("b.bin") == b"cd"


BAD_KEYS: list[object] = [
    "",
    "/absolute/logo.png",
    "trailing/",
    "double//slash.png",
    "./logo.png",
    "a/./logo.png",
    "../logo.png",
    "a/../../logo.png",
    "..",
    ".",
    "back\\slash.png",
    "space in.png",
    "ünïcode.png",
    "percent%2F.png",
    "query?.png",
    "colon:.png",
    "new\nline.png",
    "nul\x00.png",
    "a" * (MAX_KEY_LENGTH + 1),
    None,
    42,
    b"bytes.png",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_every_method_refuses_a_bad_key(store: MediaStore, key: Any) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.put(key, b"x", "image/png"),
        lambda: store.get(key),
        lambda: store.delete(key),
        lambda: store.url(key),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as caught:
            call()
        assert caught.value.field == "key"


def test_the_longest_key_and_every_allowed_character_are_accepted(store: MediaStore) -> None:
    longest = ("a" * 99 + "/") * 4 + "b" * (MAX_KEY_LENGTH - 400)
    assert len(longest) == MAX_KEY_LENGTH
    assert check_key(longest) == longest
    odd = "Az09._-/.hidden/-dash_/x..y"
    for key in (longest, odd):
        store.put(key, b"ok", "text/plain")
        assert store.get(key) == b"ok"
        assert store.url(key).endswith("/" + key)


@pytest.mark.parametrize(
    ("data", "media_type", "field"),
    [
        ("text", "text/plain", "data"),
        (None, "image/png", "data"),
        (b"x", "", "media_type"),
        (b"x", "png", "media_type"),
        (b"x", "image/png; charset=x", "media_type"),
        (b"x", None, "media_type"),
    ],
)
def test_put_refuses_bad_data_and_media_types(
    store: MediaStore, data: Any, media_type: Any, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        store.put(KEY, data, media_type)
    assert caught.value.field == field
    assert store.get(KEY) is None


def test_concurrent_puts_of_different_keys_all_land(store: MediaStore) -> None:
    def put(n: int) -> None:
        for i in range(20):
            store.put(f"t{n}/f{i}.bin", f"{n}-{i}".encode(), "application/octet-stream")

    threads = [threading.Thread(target=put, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(6):
        for i in range(20):
            assert store.get(f"t{n}/f{i}.bin") == f"{n}-{i}".encode()


def test_an_empty_store_is_truthy(store: MediaStore) -> None:
    assert store


# -- the folder store ----------------------------------------------------------


def test_folder_files_are_where_the_key_says(tmp_path: Path) -> None:
    store = FolderMediaStore(tmp_path / "media")
    store.put(KEY, b"logo", "image/png")
    path = tmp_path / "media" / "default" / "branding" / "logo-3f2a9c.png"
    assert path.read_bytes() == b"logo"
    assert store.path_for(KEY) == path
    assert (path.stat().st_mode & 0o777) == 0o644 or os.name != "posix"


def test_folder_url_without_base_url_is_the_file_uri(tmp_path: Path) -> None:
    store = FolderMediaStore(tmp_path / "media")
    url = store.put(KEY, b"logo", "image/png")
    assert url == (tmp_path / "media" / "default" / "branding" / "logo-3f2a9c.png").as_uri()
    assert url.startswith("file:///")


def test_folder_relative_root_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = FolderMediaStore("media")
    assert store.root == tmp_path / "media"
    assert store.put("a.png", b"x", "image/png") == (tmp_path / "media" / "a.png").as_uri()


def test_folder_write_is_atomic_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FolderMediaStore(tmp_path / "media")
    store.put(KEY, b"old logo", "image/png")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(KEY, b"new logo", "image/png")
    monkeypatch.undo()

    assert store.get(KEY) == b"old logo"
    folder = store.path_for(KEY).parent
    assert sorted(p.name for p in folder.iterdir()) == ["logo-3f2a9c.png"]


def test_folder_write_that_fails_midway_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FolderMediaStore(tmp_path / "media")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="Input/output error"):
        store.put(KEY, b"logo", "image/png")
    monkeypatch.undo()

    assert store.get(KEY) is None
    assert list(store.path_for(KEY).parent.iterdir()) == []


def test_folder_a_file_in_the_way_of_a_folder_is_a_storage_error(tmp_path: Path) -> None:
    store = FolderMediaStore(tmp_path / "media")
    store.put("default", b"a file", "text/plain")
    with pytest.raises(StorageError, match=r"'default/branding/logo\.png'"):
        store.put("default/branding/logo.png", b"logo", "image/png")
    assert store.get("default") == b"a file"


def test_folder_root_that_cannot_be_created_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigurationError) as caught:
        FolderMediaStore(tmp_path / "file" / "media")
    assert caught.value.field == "root"


@pytest.mark.parametrize(
    ("root", "base_url", "field"),
    [(None, None, "root"), ("", None, "root"), ("x", "", "base_url"), ("x", 3, "base_url")],
)
def test_folder_refuses_bad_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Any, base_url: Any, field: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError) as caught:
        FolderMediaStore(root, base_url)
    assert caught.value.field == field


# -- the memory store ----------------------------------------------------------


def test_memory_store_keeps_the_media_type_and_lists_keys() -> None:
    store = MemoryMediaStore()
    assert store.put("b/logo.png", b"x", "IMAGE/PNG") == "memory://media/b/logo.png"
    store.put("a/icon.ico", b"y", "image/x-icon")
    assert store.media_type("b/logo.png") == "image/png"
    assert store.media_type("missing.png") is None
    assert store.keys == ("a/icon.ico", "b/logo.png")
    store.delete("a/icon.ico")
    assert store.keys == ("b/logo.png",)


# -- the registry ----------------------------------------------------------------


def test_registry_builds_a_folder_store_from_its_url(tmp_path: Path) -> None:
    root = tmp_path / "media"
    store = builtin_registry().media_store(f"folder://{root}?url=https://cdn.example/media")
    assert isinstance(store, FolderMediaStore)
    assert store.root == root
    assert store.put(KEY, b"logo", "image/png") == f"https://cdn.example/media/{KEY}"
    assert (root / KEY).read_bytes() == b"logo"


def test_registry_folder_url_without_query_gives_file_uris(tmp_path: Path) -> None:
    root = tmp_path / "my media"
    store = builtin_registry().media_store(f"FOLDER://{root.as_posix().replace(' ', '%20')}")
    assert isinstance(store, FolderMediaStore)
    assert store.root == root
    assert store.url("a.png") == (root / "a.png").as_uri()


def test_registry_folder_url_may_be_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = builtin_registry().media_store("folder://./site/media")
    assert isinstance(store, FolderMediaStore)
    assert store.root == tmp_path / "site" / "media"


def test_registry_builds_memory_stores() -> None:
    registry = builtin_registry()
    plain = registry.media_store("memory://")
    assert isinstance(plain, MemoryMediaStore)
    assert plain.url("a.png") == "memory://media/a.png"
    cdn = registry.media_store("memory://?url=https://cdn.example/m/")
    assert cdn.url("a.png") == "https://cdn.example/m/a.png"
    assert registry.media_store("memory://") is not plain  # a new store each time


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/media",
        "folder",
        "/srv/media",
        "folder://",
        "folder:///srv/media?base=https://cdn.example",
        "folder:///srv/media?url=https://a.example&url=https://b.example",
        "folder:///srv/media?url=",
        "memory://?colour=blue",
    ],
)
def test_registry_refuses_bad_media_urls(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        builtin_registry().media_store(url)
    assert caught.value.field == "media"


def test_registry_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(
        ConfigurationError, match=r"no media store for scheme 's3' \(known: folder, memory\)"
    ):
        builtin_registry().media_store("s3://bucket")


def test_registry_media_store_from_a_plugin_and_duplicates(tmp_path: Path) -> None:
    registry = builtin_registry()
    made: list[str] = []

    def factory(url: str) -> MediaStore:
        made.append(url)
        return MemoryMediaStore("https://bucket.example")

    registry.add_media_store("s3", factory)
    store = registry.media_store("s3://bucket/prefix")
    assert made == ["s3://bucket/prefix"]
    assert store.url("a.png") == "https://bucket.example/a.png"
    with pytest.raises(ConfigurationError, match="already registered") as duplicate:
        registry.add_media_store("folder", factory)
    assert duplicate.value.field == "name"
    not_a_factory: Any = "not a factory"
    with pytest.raises(ConfigurationError) as not_callable:
        registry.add_media_store("gcs", not_a_factory)
    assert not_callable.value.field == "factory"
