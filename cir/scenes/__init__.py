"""The offline world: scenes of OpenMoji objects, their captions, and composed-retrieval triplets.

Deterministic by seed. Used by the demo, by the tests, to train the demo backbone, and exported in the official
benchmark layouts so every evaluator runs end to end with no network.
"""

from cir.scenes.objects import SceneObject, load_objects
from cir.scenes.render import STYLES, Scene, SceneRenderer
from cir.scenes.world import Group, Triplet, World, WorldConfig, build_world

__all__ = [
    "STYLES",
    "Group",
    "Scene",
    "SceneObject",
    "SceneRenderer",
    "Triplet",
    "World",
    "WorldConfig",
    "build_world",
    "load_objects",
]
