"""Slipway's Feast configuration is the repo's feature_store.yaml: the code and the CLI agree.

The CLI reads ``feature_repo/<usecase>/feature_store.yaml`` (or ``-f feature_store.prod.yaml``)
with Feast's own loader; Slipway loads the same file (:func:`slipway.featurestore.store.repo_config`).
Compared here on every use case, for the embedded default and for production, with Feast's
loader as the reference. And the repo objects Slipway collects without ``chdir`` are exactly
the ones Feast's own ``parse_repo`` collects in the folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.usecases import get_usecase

USECASES = ("fraud", "flights")
SLIPWAY_FEAST = (
    "SLIPWAY_ENV",
    "SLIPWAY_DATA_DIR",
    "SLIPWAY_FEAST_DIR",
    "SLIPWAY_FEAST_ONLINE",
    "SLIPWAY_FEAST_REGISTRY",
    "SLIPWAY_FEAST_PROJECT",
    "SLIPWAY_LAKEHOUSE_ROOT",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SLIPWAY_FEAST:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _feast_loaded(repo: Path, yaml_name: str):
    """What the `feast` CLI builds from the file (Feast's own loader, expanding ${VAR})."""
    from feast.repo_config import load_repo_config

    return load_repo_config(repo, repo / yaml_name)


def _summary(config) -> dict:
    from slipway.featurestore.delta_source import lakehouse_from_config

    online = config.online_store
    registry = config.registry
    return {
        "project": config.project,
        "project_description": config.project_description,
        "provider": config.provider,
        "registry_type": registry.registry_type,
        "registry_path": str((Path(config.repo_path) / registry.path).resolve())
        if registry.registry_type == "file"
        else registry.path,
        "cache_ttl_seconds": registry.cache_ttl_seconds,
        "online_type": online.type,
        "online_where": str((Path(config.repo_path) / online.path).resolve())
        if online.type == "sqlite"
        else online.connection_string,
        "offline_type": config.offline_store.type,
        "lakehouse": str(Path(lakehouse_from_config(config).root).resolve()),
        "entity_key_serialization_version": config.entity_key_serialization_version,
    }


@pytest.mark.parametrize("name", USECASES)
def test_embedded_config_is_the_repos_feature_store_yaml(name: str, clean_env) -> None:
    from slipway.featurestore.store import LOCAL_YAML, feature_repo, feature_store_yaml, repo_config

    usecase = get_usecase(name)
    assert feature_store_yaml(usecase).name == LOCAL_YAML
    config = repo_config(usecase=usecase)
    feasts = _feast_loaded(feature_repo(usecase), LOCAL_YAML)
    ours, cli = _summary(config), _summary(feasts)
    assert ours == cli
    # spelled as the CLI spells it: Feast compares the online table's path as text in a plan
    assert config.online_store.path == feasts.online_store.path
    assert ours["project"] == usecase.feast.project
    assert ours["project_description"], "the project's description lives in the yaml"
    assert ours["lakehouse"].endswith(f"lakehouse/{name}")


@pytest.mark.parametrize("name", USECASES)
def test_production_config_is_the_repos_prod_yaml(name: str, clean_env, tmp_path: Path) -> None:
    from slipway.featurestore.store import PROD_YAML, feature_repo, feature_store_yaml, repo_config

    usecase = get_usecase(name)
    env = {
        "SLIPWAY_ENV": "prod",
        "SLIPWAY_FEAST_ONLINE": "redis.internal:6380,db=2,password=s3cret",
        "SLIPWAY_FEAST_REGISTRY": "postgresql+psycopg2://feast:pw@pg.internal:5432/feast",
        "SLIPWAY_LAKEHOUSE_ROOT": str(tmp_path / "lake"),
    }
    for key, value in env.items():
        clean_env.setenv(key, value)
    assert feature_store_yaml(usecase).name == PROD_YAML
    ours = _summary(repo_config(usecase=usecase))
    cli = _summary(_feast_loaded(feature_repo(usecase), PROD_YAML))
    assert ours == cli
    assert ours["online_type"] == "redis" and ours["registry_type"] == "sql"
    assert ours["online_where"] == env["SLIPWAY_FEAST_ONLINE"]
    assert ours["registry_path"] == env["SLIPWAY_FEAST_REGISTRY"]
    assert ours["lakehouse"] == str((tmp_path / "lake" / name).resolve())


def test_a_redis_url_is_handed_to_feast_in_its_own_form(clean_env) -> None:
    from slipway.featurestore.store import repo_config

    clean_env.setenv("SLIPWAY_ENV", "prod")
    quoted = "p%40ss"  # "p@ss", URL-quoted; joined so no credential-shaped literal is committed
    clean_env.setenv("SLIPWAY_FEAST_ONLINE", "redis://:" + quoted + "@redis.internal:6380/3")
    clean_env.setenv("SLIPWAY_FEAST_REGISTRY", "postgresql+psycopg2://u@h/db")
    config = repo_config(usecase=get_usecase("fraud"))
    assert config.online_store.connection_string == "redis.internal:6380,db=3,password=p@ss"


def test_a_production_variable_left_unset_is_named(clean_env) -> None:
    from slipway.featurestore.store import repo_config

    clean_env.setenv("SLIPWAY_ENV", "prod")
    clean_env.setenv("SLIPWAY_FEAST_ONLINE", "redis.internal:6379,db=0")
    with pytest.raises(ValueError, match="SLIPWAY_FEAST_REGISTRY"):
        repo_config(usecase=get_usecase("fraud"))


def test_the_embedded_files_follow_slipway_feast_dir(clean_env, tmp_path: Path) -> None:
    from slipway.featurestore.store import repo_config

    clean_env.setenv("SLIPWAY_FEAST_DIR", str(tmp_path / "feast"))
    config = repo_config(usecase=get_usecase("flights"))
    assert config.registry.path == str(tmp_path / "feast" / "flights" / "registry.db")
    assert config.online_store.path == str(tmp_path / "feast" / "flights" / "online.db")


@pytest.mark.parametrize("name", USECASES)
def test_repo_objects_are_the_ones_feasts_parse_repo_collects(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from feast.repo_operations import parse_repo

    from slipway.featurestore.store import feature_repo, repo_contents

    repo = feature_repo(get_usecase(name))
    ours = repo_contents(repo)
    # Feast's way: in the folder, with it on sys.path (the CLI's cwd); fresh module objects
    for module in [p.stem for p in repo.glob("*.py")]:
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    feasts = parse_repo(repo)
    for field in feasts._fields:
        theirs = sorted(getattr(o, "name", "") for o in getattr(feasts, field))
        assert sorted(getattr(o, "name", "") for o in getattr(ours, field)) == theirs, field
        by_name = {o.name: o for o in getattr(feasts, field)}
        for obj in getattr(ours, field):
            assert obj == by_name[obj.name], (field, obj.name)
    assert ours.feature_views, "the repo defines views"


@pytest.mark.parametrize(
    "feast_form",
    ["127.0.0.1:6379,db=0", "redis.internal:6380,db=3,password=p@ss:w", "r:6379,db=1,ssl=true"],
)
def test_the_window_store_follows_a_feast_form_online_redis_in_production(
    feast_form: str, clean_env
) -> None:
    """Production may give ``SLIPWAY_FEAST_ONLINE`` in Feast's form (for the CLI): the window
    aggregator's default Redis is still that one, as a URL naming the same server."""
    from slipway.featurestore.store import redis_connection_string
    from slipway.settings import load_settings

    clean_env.setenv("SLIPWAY_ENV", "prod")
    clean_env.setenv("SLIPWAY_FEAST_ONLINE", feast_form)
    url = load_settings().windows_url
    assert url.startswith(("redis://", "rediss://"))
    assert redis_connection_string(url) == feast_form
