/** The job pages' one stylesheet, served from /assets/ (no build step, no inline styles, so the CSP can forbid them). */
export const STYLE_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f6f8fa; --card: #ffffff; --text: #1f2328; --muted: #59636e; --border: #d1d9e0;
  --link: #0969da; --accent: #0969da; --danger: #cf222e; --danger-bg: #ffebe9;
  --ok: #1a7f37; --warn: #9a6700; --log-bg: #0d1117; --log-text: #e6edf3; --log-muted: #7d8590;
  --radius: 8px;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif;
  font-size: 15px; line-height: 1.5;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --card: #151b23; --text: #e6edf3; --muted: #9198a1; --border: #3d444d;
    --link: #4493f8; --accent: #4493f8; --danger: #f85149; --danger-bg: #2d1517; --ok: #3fb950; --warn: #d29922;
    --log-bg: #010409; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
code, .mono { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.92em; }
.top { display: flex; align-items: center; justify-content: space-between; gap: 12px; flex-wrap: wrap;
  padding: 10px 20px; background: var(--card); border-bottom: 1px solid var(--border); }
.brand { font-weight: 700; color: var(--text); letter-spacing: -0.01em; }
.brand::before { content: "◆ "; color: var(--accent); }
.who { display: flex; align-items: center; gap: 10px; color: var(--muted); font-size: 0.93em; }
.who form { margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 20px; }
.card { background: var(--card); border: 1px solid var(--border); border-radius: var(--radius); padding: 16px 20px; margin-bottom: 16px; }
h1 { font-size: 1.45rem; line-height: 1.3; margin: 0; word-break: break-word; }
h2 { font-size: 1.05rem; margin: 0 0 10px; display: flex; align-items: center; gap: 10px; }
.title-row { display: flex; align-items: flex-start; gap: 10px; flex-wrap: wrap; }
.sub { color: var(--muted); margin: 6px 0 0; word-break: break-word; }
.outcome { margin: 12px 0 0; font-weight: 600; }
.notice { margin: 12px 0 0; padding: 8px 12px; border-radius: 6px; background: var(--bg); border: 1px solid var(--border); }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 0.8rem; font-weight: 600;
  border: 1px solid transparent; white-space: nowrap; vertical-align: middle; margin-top: 3px; }
.state-received, .state-queued { background: #eaeef2; color: #424a53; }
.state-provisioning, .state-running, .state-reporting { background: #ddf4ff; color: #0550ae; }
.state-succeeded { background: #dafbe1; color: #116329; }
.state-failed { background: #ffebe9; color: #a40e26; }
.state-cancelled, .state-rejected { background: #eaeef2; color: #24292f; border-color: #d1d9e0; }
.state-timed_out { background: #fff8c5; color: #7d4e00; }
.state-provisioning::before, .state-running::before, .state-reporting::before { content: "● "; animation: pulse 1.6s infinite; }
@keyframes pulse { 50% { opacity: 0.35; } }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px 24px; margin: 16px 0 0; }
.facts div { min-width: 0; }
.facts dt { color: var(--muted); font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.04em; }
.facts dd { margin: 2px 0 0; word-break: break-word; }
.blocked h2 { font-size: 0.95rem; margin: 16px 0 4px; }
.blocked ul { margin: 0; padding-left: 20px; }
.blocked code { word-break: break-all; }
.steps { list-style: none; padding: 0; margin: 16px 0 0; display: flex; flex-wrap: wrap; gap: 6px; }
.steps li { border: 1px solid var(--border); border-radius: 6px; padding: 4px 10px; font-size: 0.88rem; background: var(--bg); }
.steps .step-done { border-color: var(--ok); }
.steps .step-done::before { content: "✓ "; color: var(--ok); }
.steps .step-running { border-color: var(--accent); }
.steps .step-running::before { content: "● "; color: var(--accent); }
.steps .step-failed { border-color: var(--danger); }
.steps .step-failed::before { content: "✕ "; color: var(--danger); }
.steps .step-pending, .steps .step-skipped { color: var(--muted); }
.steps .took { color: var(--muted); margin-left: 4px; }
.actions { margin: 16px 0 0; display: flex; gap: 10px; flex-wrap: wrap; }
.actions form { margin: 0; }
button, .button { font: inherit; font-size: 0.9rem; font-weight: 600; padding: 6px 14px; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border); background: var(--bg); color: var(--text); }
button.danger { color: var(--danger); border-color: var(--danger); background: var(--card); }
button.danger:hover { background: var(--danger-bg); }
button.primary, .button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button:disabled { opacity: 0.6; cursor: default; }
.link-button { border: none; background: none; padding: 0; color: var(--link); font-weight: 400; }
.live { font-size: 0.75rem; font-weight: 600; color: var(--ok); }
.live::before { content: "● "; animation: pulse 1.6s infinite; }
.live.ended { color: var(--muted); }
.live.ended::before { content: ""; animation: none; }
.log-head { justify-content: space-between; }
.log-head small { color: var(--muted); font-weight: 400; }
.log { background: var(--log-bg); color: var(--log-text); border-radius: var(--radius); padding: 10px 0; overflow-x: auto;
  font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; line-height: 1.5; }
.line { display: flex; gap: 12px; padding: 0 14px; }
.line:hover { background: rgba(110, 118, 129, 0.15); }
.line time { color: var(--log-muted); flex: none; user-select: none; }
.line .text { white-space: pre-wrap; word-break: break-word; min-width: 0; }
.line.stream-stderr .text { color: #ffa198; }
.line.stream-worker .text { color: #79c0ff; }
.log .empty { color: var(--log-muted); padding: 0 14px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid var(--border); vertical-align: top; }
th { font-size: 0.8rem; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; font-weight: 600; }
tr:last-child td { border-bottom: none; }
td.num, th.num { text-align: right; white-space: nowrap; }
.job-title { display: block; color: var(--muted); font-size: 0.88rem; word-break: break-word; }
.filters { display: flex; gap: 10px; flex-wrap: wrap; align-items: end; margin: 14px 0 0; }
.filters label { display: flex; flex-direction: column; font-size: 0.8rem; color: var(--muted); gap: 2px; }
select { font: inherit; padding: 5px 8px; border-radius: 6px; border: 1px solid var(--border); background: var(--card); color: var(--text); min-width: 150px; }
.muted { color: var(--muted); }
.center { max-width: 460px; margin: 12vh auto 0; text-align: center; }
.center h1 { margin-bottom: 8px; }
@media (max-width: 640px) {
  main { padding: 12px; }
  .top { padding: 10px 12px; }
  .card { padding: 14px; }
  h1 { font-size: 1.2rem; }
  .facts { grid-template-columns: 1fr 1fr; gap: 10px 14px; }
  .line { gap: 8px; padding: 0 10px; }
  .line time { display: none; }
  table.stack thead { display: none; }
  table.stack tr { display: block; padding: 10px 0; border-bottom: 1px solid var(--border); }
  table.stack tr:last-child { border-bottom: none; }
  table.stack td { display: flex; justify-content: space-between; gap: 12px; border: none; padding: 3px 2px; text-align: right; }
  table.stack td::before { content: attr(data-label); color: var(--muted); font-size: 0.8rem; text-transform: uppercase; text-align: left; }
  table.stack td.main { display: block; text-align: left; }
  table.stack td.main::before { content: none; }
  select { min-width: 0; width: 100%; }
  .filters label { flex: 1 1 140px; }
}
`;
