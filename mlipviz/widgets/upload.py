"""A file upload button that refuses, in the browser, files too large to travel to the kernel.

``ipywidgets.FileUpload`` sends the file as one websocket message through the Jupyter server,
which drops messages over 10 MiB (tornado's ``websocket_max_message_size``): a large trajectory
then never arrives, without a word. `UploadButton` checks the size in the browser first and,
for a file over `MAX_UPLOAD_BYTES`, says so and points to opening the file by its path on the
server; smaller files travel as one binary buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

#: largest upload sent to the kernel (below the Jupyter server's 10 MiB message limit)
MAX_UPLOAD_BYTES = 8 * 2**20

_ESM = """
function size(bytes) {
  return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.ceil(bytes / 1024) + " kB";
}
function render({ model, el }) {
  const input = document.createElement("input");
  input.type = "file";
  input.className = "mlipviz-upload-input";
  input.style.display = "none";
  const button = document.createElement("button");
  button.className = "jupyter-widgets jupyter-button widget-button mlipviz-upload-button";
  button.style.width = "auto";  // the label in full (widget buttons are 148 px by default)
  const note = document.createElement("span");
  note.className = "mlipviz-upload-note";
  note.style.cssText = "margin-left:8px;font-size:12px";
  const show = () => {
    button.textContent = model.get("description");
    input.accept = model.get("accept");
    const error = model.get("error");
    note.style.color = error ? "#a00" : "#555";
    note.textContent = error ||
      (model.get("filename") ? model.get("filename") + " (" + size(model.get("size")) + ")" : "");
  };
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    const limit = model.get("max_bytes");
    if (file.size > limit) {
      model.set("error", file.name + " is " + size(file.size) + ", more than a browser upload carries (" +
                size(limit) + "): open it by its path on the server instead (structures: file on server)");
      model.save_changes();
      return;
    }
    note.style.color = "#555";
    note.textContent = "uploading " + file.name + "...";
    model.send({ name: file.name, size: file.size }, undefined, [await file.arrayBuffer()]);
  });
  model.on("change:error", show);
  model.on("change:filename", show);
  model.on("change:description", show);
  show();
  el.append(button, input, note);
}
export default { render };
"""


class UploadButton(anywidget.AnyWidget):
    """Choose a file in the browser and send it to the kernel, if it is small enough.

    ``filename``, ``size`` and `content` describe the last file received; ``error`` is the
    browser's message for a file that was too large (``""`` otherwise). `on_upload` callbacks
    get ``(filename, content)``.
    """

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    description = traitlets.Unicode("choose file...").tag(sync=True)
    accept = traitlets.Unicode("").tag(sync=True)
    max_bytes = traitlets.Int(MAX_UPLOAD_BYTES).tag(sync=True)
    filename = traitlets.Unicode("").tag(sync=True)
    size = traitlets.Int(0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.content: bytes | None = None
        self._callbacks: list[Callable[[str, bytes], Any]] = []
        self.on_msg(self._received)

    def on_upload(self, callback: Callable[[str, bytes], Any]) -> None:
        """Call ``callback(filename, content)`` for each file received."""
        self._callbacks.append(callback)

    def receive(self, filename: str, content: bytes) -> None:
        """Take a file as if the browser had sent it (also for tests of the app's logic)."""
        self.content = bytes(content)
        self.error = ""
        self.size = len(self.content)
        self.filename = filename
        for callback in self._callbacks:
            callback(filename, self.content)

    def _received(self, _: Any, message: Any, buffers: list[Any]) -> None:
        if isinstance(message, dict) and "name" in message and buffers:
            self.receive(str(message["name"]), bytes(buffers[0]))
