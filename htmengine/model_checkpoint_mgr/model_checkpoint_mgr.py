"""The original engine's import path of the model checkpoint manager: the same
`ModelCheckpointMgr` and errors as `htmengine.model_swapper.checkpoint_manager` (one
implementation), e.g. ``ModelCheckpointMgr().loadModelDefinition(uid)`` raising
`ModelNotFound` for a deleted model."""

from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.errors import ModelAlreadyExists, ModelNotFound

__all__ = ["ModelAlreadyExists", "ModelCheckpointMgr", "ModelNotFound"]
