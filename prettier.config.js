// Formatting only (lint rules are in eslint.config.js). printWidth 160: the width the code was
// written to by hand; narrower would rewrap most of the tree for no reader's benefit.
/** @type {import("prettier").Config} */
export default {
  printWidth: 160,
  // Templates tagged html`…` are the job pages' output, byte for byte: Prettier must not reflow them.
  embeddedLanguageFormatting: "off",
};
