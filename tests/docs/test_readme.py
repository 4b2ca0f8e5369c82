"""The README's examples are real: its YAML config validates."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from diffhep.config import load_config_dict

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_yaml_config_validates():
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no YAML example"
    for block in blocks:
        config = load_config_dict(yaml.safe_load(block), source="README.md")
        assert config.data["name"]
