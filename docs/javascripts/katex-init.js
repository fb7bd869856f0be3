// Typeset the formulas that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \],
// with the KaTeX bundled under javascripts/katex/ (no CDN: the site works offline).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
