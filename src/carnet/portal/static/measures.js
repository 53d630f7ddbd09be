// Measurements page (carnet/portal/pages/measures.py): the Apple Health export is sent with XMLHttpRequest so that
// the page shows the upload's progress, then the import job's progress, polled every second. Without this script
// the form posts normally and the job page shows the same progress on reload.
(function () {
  "use strict";
  function poll(url, bar, detail, done) {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (job) {
        bar.value = job.percent;
        detail.textContent = job.state === "running" ? job.records + " …" : job.summary;
        if (job.state === "running") { setTimeout(function () { poll(url, bar, detail, done); }, 1000); }
        else if (done) { done(job); }
      });
  }
  var form = document.getElementById("import-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      if (!window.XMLHttpRequest || !window.FormData) { return; }
      event.preventDefault();
      var status = document.getElementById("import-status");
      var bar = document.getElementById("import-progress");
      var label = document.getElementById("import-label");
      var detail = document.getElementById("import-detail");
      status.hidden = false;
      label.textContent = form.dataset.uploading;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) { bar.value = Math.round(e.loaded * 100 / e.total); }
      };
      xhr.onload = function () {
        var answer = null;
        try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
        if (xhr.status !== 200 || !answer || !answer.job) {
          document.open(); document.write(xhr.responseText); document.close();
          return;
        }
        label.textContent = form.dataset.importing;
        bar.value = 0;
        poll("/portal/measures/import/" + answer.job + "/progress", bar, detail, function () {
          window.location.href = "/portal/measures/import/" + answer.job;
        });
      };
      xhr.send(new FormData(form));
    });
  }
  var job = document.getElementById("job");
  if (job && document.getElementById("job-progress").value < 100) {
    poll(job.dataset.progress, document.getElementById("job-progress"), document.getElementById("job-summary"),
         function () { window.location.reload(); });
  }
})();
