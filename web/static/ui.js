// Small DOM helpers shared by the talk page (app.js) and the memory page (memory.js).

/** The server's messages quote commands in backticks ("run `make llm`"): show them as code. */
export function withCode(text) {
  return String(text)
    .split("`")
    .map((part, i) => {
      if (i % 2 === 0) return document.createTextNode(part);
      const code = document.createElement("code");
      code.textContent = part;
      return code;
    });
}

// Hues that keep white text readable on the avatar gradients.
const HUES = [222, 250, 272, 295, 320, 345, 8, 190];

/** A stable hue per avatar id, so an avatar has the same colour on every page. */
export function hashHue(s) {
  let h = 0;
  for (const c of s) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return HUES[h % HUES.length];
}
