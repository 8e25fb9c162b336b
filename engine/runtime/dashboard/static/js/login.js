// The login form: say so when the daemon refused the token (it redirects to /?refused=1).
if (new URLSearchParams(location.search).has('refused')) {
  document.getElementById('refused').classList.remove('hidden');
}
