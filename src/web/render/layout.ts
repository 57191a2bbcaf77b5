import { html, type Html } from "../html.js";
import { SCRIPT_URL, STYLE_URL } from "../routes/assets.js";

export interface Viewer {
  login: string;
  csrf: string;
}

/** Every page's frame: viewport for phones, our stylesheet, who is signed in, and Sign out. */
export function renderLayout(page: { title: string; viewer?: Viewer; body: Html; script?: boolean }): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${page.title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${STYLE_URL}">
</head>
<body>
<header class="top">
  <a class="brand" href="/jobs">agent-work</a>
  ${
    page.viewer
      ? html`<div class="who"><span>Signed in as <b>${page.viewer.login}</b></span>
    <form method="post" action="/auth/logout"><input type="hidden" name="csrf" value="${page.viewer.csrf}"><button class="link-button" type="submit">Sign out</button></form></div>`
      : ""
  }
</header>
<main>
${page.body}
</main>
${page.script ? html`<script src="${SCRIPT_URL}" defer></script>` : ""}
</body>
</html>
`;
}

/** A short page with one message: sign-in needed, not found, GitHub unavailable. */
export function renderMessage(page: { title: string; text: string; viewer?: Viewer; link?: { href: string; label: string } }): Html {
  return renderLayout({
    title: `${page.title} · agent-work`,
    ...(page.viewer ? { viewer: page.viewer } : {}),
    body: html`<div class="card center">
  <h1>${page.title}</h1>
  <p class="muted">${page.text}</p>
  ${page.link ? html`<p><a class="button primary" href="${page.link.href}">${page.link.label}</a></p>` : ""}
</div>`,
  });
}
