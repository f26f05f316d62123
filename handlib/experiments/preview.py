"""Quick shaded previews of a hand mesh with Mitsuba (for figures, not for fitting).

Not the differentiable renderer used for fitting: this only answers "what does
this mesh look like", with a skin-coloured diffuse hand under a sky light and a
key light, seen from a look-at camera.
"""

from __future__ import annotations

import mitsuba as mi
import numpy as np

from handlib.rendering.backend import ensure_variant
from handlib.rendering.colour import to_srgb8

SKIN = (0.75, 0.55, 0.45)


def _mesh(vertices: np.ndarray, faces: np.ndarray) -> mi.Mesh:
    ensure_variant()
    props = mi.Properties()
    props["bsdf"] = mi.load_dict({"type": "diffuse", "reflectance": {"type": "rgb", "value": SKIN}})
    mesh = mi.Mesh("hand", int(vertices.shape[0]), int(faces.shape[0]), props=props, has_vertex_normals=True)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    params["faces"] = mi.UInt32(np.ascontiguousarray(faces, dtype=np.uint32).ravel())
    params.update()
    mesh.recompute_vertex_normals()
    return mesh


def look_at_view(vertices: np.ndarray, direction: np.ndarray, up: np.ndarray, distance: float = 3.0) -> dict:
    """Camera keyword arguments looking at the mesh centre from ``direction``."""
    centre = (vertices.max(0) + vertices.min(0)) / 2
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    direction = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    return {
        "origin": centre + direction * radius * distance,
        "target": centre,
        "up": np.asarray(up, float),
        "fov": float(np.degrees(2 * np.arctan(1.1 / distance))),
    }


def render_preview(
    vertices: np.ndarray,
    faces: np.ndarray,
    origin: np.ndarray,
    target: np.ndarray,
    up: np.ndarray,
    fov: float = 40.0,
    size: tuple[int, int] = (320, 320),
    spp: int = 16,
) -> np.ndarray:
    """sRGB uint8 image (H, W, 3) of the mesh (any unit) on a white background."""
    view_dir = np.asarray(target, float) - np.asarray(origin, float)
    light_dir = view_dir + np.asarray(up, float) * 0.8 * np.linalg.norm(view_dir)  # from above the camera
    scene = mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "path", "max_depth": 3, "hide_emitters": True},
            "sensor": {
                "type": "perspective",
                "fov": fov,
                "to_world": mi.ScalarTransform4f().look_at(
                    origin=[float(x) for x in origin], target=[float(x) for x in target], up=[float(x) for x in up]
                ),
                "film": {
                    "type": "hdrfilm",
                    "width": size[0],
                    "height": size[1],
                    "pixel_format": "rgba",
                    "rfilter": {"type": "gaussian"},
                },
                "sampler": {"type": "independent", "sample_count": spp},
            },
            "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.45}},
            "key": {
                "type": "directional",
                "direction": [float(x) for x in light_dir],
                "irradiance": {"type": "rgb", "value": 2.2},
            },
            "hand": _mesh(vertices, faces),
        }
    )
    rgba = np.asarray(mi.render(scene, spp=spp))  # premultiplied: emitters hidden
    rgb = rgba[..., :3] + (1.0 - rgba[..., 3:4])  # over white
    return to_srgb8(rgb)


#: Views of a hand in its own frame (+x toward the fingers, -y out of the palm):
#: name -> (direction from the hand to the camera, camera up).
HAND_VIEWS = {
    "back": ((0.0, 1.0, 0.3), (1.0, 0.0, 0.0)),
    "side": ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0)),
    "palm": ((0.0, -1.0, 0.3), (1.0, 0.0, 0.0)),
}


def contact_sheet(
    meshes: dict[str, np.ndarray],
    faces: np.ndarray,
    views=HAND_VIEWS,
    tile: int = 240,
    spp: int = 32,
    shared_framing: bool = False,
) -> np.ndarray:
    """One row per named mesh (V, 3), one column per view, labelled; uint8 RGB.

    With ``shared_framing`` every mesh is seen by the same cameras (framed on all
    of them together), so sizes compare; otherwise each mesh fills its tile.
    """
    import cv2

    everything = np.concatenate(list(meshes.values()))
    rows = []
    for name, vertices in meshes.items():
        framed = everything if shared_framing else vertices
        row = []
        for view, (direction, up) in views.items():
            camera = look_at_view(framed, np.asarray(direction), np.asarray(up))
            image = render_preview(vertices, faces, **camera, size=(tile, tile), spp=spp)
            cv2.putText(image, f"{name} / {view}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            row.append(image)
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)
