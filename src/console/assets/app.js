// logship console: the router, loaded after every page's script. It shows the page the URL
// names (the first whose `match` answers; search when none does), after stopping what the
// other pages run, and follows the browser's back and forward.
"use strict";

function route() {
  const path = location.pathname;
  for (const p of pages) if (p.leave) p.leave(path);
  $("tail-view").hidden = true;
  $("collect-view").hidden = true;
  $("hosts-view").hidden = true;
  $("pipeline-view").hidden = true;
  $("storage-view").hidden = true;
  $("alerts-view").hidden = true;
  // Search registers first and matches every path: it is the last resort.
  const [fallback, ...specific] = pages;
  for (const p of specific) {
    const args = p.match(path);
    if (args) return p.run(...args);
  }
  return fallback.run();
}

$("sign-out").addEventListener("click", signOut);
window.addEventListener("popstate", route);
loadMe().then(route);
