"""`modgen_bench.config_utils.build`: dataclass from a TOML table, unknown keys are errors."""

from dataclasses import dataclass

import pytest

from modgen_bench.config_utils import build


@dataclass
class _Sizes:
    n_layer: int
    d_model: int = 8


def test_build_known_keys():
    assert build(_Sizes, {"n_layer": 2}, "[expert]") == _Sizes(2, 8)


def test_build_unknown_key_names_table_and_valid_keys():
    with pytest.raises(
        ValueError,
        match=r"^\[expert\]: unknown keys \['dmodel'\]; "
        r"valid keys: \['d_model', 'n_layer'\]$",
    ):
        build(_Sizes, {"n_layer": 2, "dmodel": 8}, "[expert]")
