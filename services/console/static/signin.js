// Sign-in from a link: the token rides in the URL fragment (#token=... from `make dev`, #access_token=...
// from an OIDC provider's implicit-flow redirect), which browsers never send to a server. Read it, wipe it
// from the address bar and history, and post it to /session, which keeps it in an HttpOnly cookie.
(function () {
  "use strict";
  var fragment = new URLSearchParams(window.location.hash.slice(1));
  var token = fragment.get("token") || fragment.get("access_token");
  if (!token) {
    return;
  }
  window.history.replaceState(null, "", window.location.pathname);
  var form = document.getElementById("token-form");
  form.elements.token.value = token;
  form.submit();
})();
