// Formatting only (lint rules are in eslint.config.js). printWidth 160: the width the code was
// written to by hand; narrower would rewrap most of the tree for no reader's benefit.
/** @type {import("prettier").Config} */
export default {
  printWidth: 160,
};
