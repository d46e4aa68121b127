// When the session has ended (logout in another tab, user removed, server restarted with a new
// key) the server answers the page's data requests with 401: go back to the login page instead of
// showing values that silently stopped updating. Several refresh requests fail at once; navigate
// only for the first, or each new navigation would abort the previous one.
(function () {
  "use strict";
  var originalFetch = window.fetch;
  var leaving = false;
  window.fetch = function () {
    return originalFetch.apply(this, arguments).then(function (response) {
      if (!leaving && response.status === 401 && response.url.indexOf("/_dash-") !== -1) {
        leaving = true;
        window.location.assign("/login");
      }
      return response;
    });
  };
})();
