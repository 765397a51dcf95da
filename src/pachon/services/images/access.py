"""What every image endpoint shares: the ObsCore index, request parameters, dataset look-up with
collection visibility.

A dataset the user may not see is answered exactly like one that does not exist (404, the same
message), so embargoed datasets do not even reveal their existence.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from fastapi import HTTPException, Request

from pachon.core.errors import ConfigError
from pachon.services.images.index import ObscoreIndex
from pachon.services.images.obscore import IMAGE_STORAGE_CLASSES, dataset_did, parse_did

__all__ = ["obscore_index", "request_params", "find_visible_dataset", "visible_rows", "not_found_message"]

_log = logging.getLogger(__name__)


def obscore_index(context: Any) -> ObscoreIndex:
    """The application's shared `ObscoreIndex` (``context.extras["obscore"]``, made on first use)."""
    index = context.extras.get("obscore")
    if index is None:
        index = context.extras.setdefault("obscore", ObscoreIndex(context.repo))
    return index


async def request_params(request: Request) -> dict[str, list[str]]:
    """Query-string and form parameters, names upper-cased (DALI names are case-insensitive)."""
    params: dict[str, list[str]] = {}
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    for key, value in items:
        params.setdefault(key.upper(), []).append(value)
    return params


def not_found_message(text: str) -> str:
    """The one message for unknown, malformed and invisible dataset ids."""
    return f"no image dataset with ID {text!r}; find identifiers with a SIA query (obs_publisher_did)"


def find_visible_dataset(context: Any, user: Any, text: str) -> Any:
    """The image dataset named by ``text`` (publisher DID or UUID) if ``user`` may see it.

    Raises
    ------
    HTTPException
        404 when the id is malformed or unknown, the dataset is not an image, or its run is
        hidden from the user by an access rule (indistinguishable on purpose).
    """
    try:
        dataset_id = parse_did(text)
    except ConfigError:
        raise HTTPException(404, not_found_message(text)) from None
    ref = context.repo.registry.get_dataset(dataset_id)
    if ref is None or not context.auth.visible(user, ref.run):
        raise HTTPException(404, not_found_message(text))
    if context.repo.registry.get_dataset_type(ref.dataset_type).storage_class not in IMAGE_STORAGE_CLASSES:
        raise HTTPException(404, not_found_message(text))
    _log.debug("%s resolved to %s for %s", dataset_did(ref.id), ref, user.name)
    return ref


def visible_rows(context: Any, user: Any, collections: Any) -> np.ndarray:
    """Boolean mask of ObsCore rows whose ``obs_collection`` the user may see (one check per run)."""
    values = np.asarray(collections, dtype=object)
    allowed = [c for c in set(values.tolist()) if context.auth.visible(user, c)]
    return np.isin(values, allowed)
