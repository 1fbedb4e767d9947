"""The gallery: a static HTML view of the project's outputs, to judge a LoRA by looking.

    model.py   pure: the state (and what is on disk) → the gallery's pages as plain data
    html.py    pure: that data → HTML text, the stylesheet and the script (no server, no CDN, no network)
    build.py   the edge: reads the state and the images, makes thumbnails once (Pillow, cached by content
               hash), writes the pages that changed; `serve` shows it on loopback

Imports go one way: model ← html ← build.
"""

from reconciler.present.gallery.build import GalleryResult, build_gallery, serve_gallery

__all__ = ["GalleryResult", "build_gallery", "serve_gallery"]
