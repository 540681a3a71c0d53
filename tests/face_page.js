// Harness for tests/test_face_browser.py: draws the faces passed in location.hash
// ({"id": faceSettings, ...}), each in a 300 px box, animated by the module's shared loop.
import * as faces from "/static/face.js";

const given = JSON.parse(decodeURIComponent(location.hash.slice(1)) || "{}");
const made = {};
for (const [id, face] of Object.entries(given)) {
  const box = document.createElement("div");
  box.className = "face-harness-box";
  box.id = `face-${id}`;
  document.getElementById("faces").append(box);
  made[id] = faces.createFace(box, face, { label: id });
}
faces.animateFaces(Object.values(made));
window.faceModule = faces;
window.faces = made;
window.harnessReady = true;
