"""Image references and whether they are pinned: an image that moves under its tag (``latest``,
``python:3``) makes two deployments of the same files run different software."""

import re
from dataclasses import dataclass

#: Images whose exact versions have two parts (PostgreSQL since 10: 17.6); others need three.
TWO_PART_VERSIONS = {"postgres"}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class ImageReference:
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The repository's last part: ``gallring`` for ``ghcr.io/example/gallring``."""
        return self.repository.rsplit("/", 1)[-1]


def parse_image(image: str) -> ImageReference:
    """``[registry[:port]/]path[:tag][@digest]``: a colon after the last slash starts the tag."""
    name, _, digest = image.partition("@")
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return ImageReference(name[:colon], name[colon + 1 :], digest or None)
    return ImageReference(name, None, digest or None)


def pin_problem(image: str) -> str | None:
    """Why ``image`` is not pinned to one version, or None: a digest pins it; otherwise the tag
    must begin with a whole version (``3.11.14-slim-bookworm``, ``v1.5.0``, ``17.6-bookworm``)."""
    reference = parse_image(image)
    if reference.digest is not None:
        return None if _DIGEST.match(reference.digest) else f"{image}: not a sha256 digest"
    if reference.tag is None:
        return f"{image}: no tag (that is `latest`)"
    version = _VERSION.match(reference.tag)
    if version is None:
        return f"{image}: the tag {reference.tag!r} is no version"
    parts_needed = 2 if reference.name in TWO_PART_VERSIONS else 3
    if len(version.group(1).split(".")) < parts_needed:
        return f"{image}: the tag {reference.tag!r} moves with every release of that line"
    return None
