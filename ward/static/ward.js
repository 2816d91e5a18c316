/* The ward app's only script: optional comfort. Every page works without it.
   - the new-check page: drop a log anywhere on the page; the chosen file's name and size, and a
     warning before sending a file over the cap; one submission at a time;
   - the result and print pages: a Print button that loads the plots first. */
(function () {
  "use strict";

  function fileSummary(file, maxBytes, maxMb) {
    var kb = file.size / 1024;
    var size = kb < 1024 ? Math.round(kb) + " kB" : (kb / 1024).toFixed(1) + " MB";
    if (maxBytes && file.size > maxBytes) {
      return { text: file.name + " (" + size + ") is larger than " + maxMb + " MB, the most the ward app takes: is it the right file?", bad: true };
    }
    return { text: "Chosen: " + file.name + " (" + size + ")", bad: false };
  }

  function setupForm(form) {
    var input = document.getElementById("f-log");
    var zone = document.getElementById("dropzone");
    var shown = document.getElementById("dz-file");
    var busy = document.getElementById("busy");
    var maxBytes = parseInt(form.getAttribute("data-max-bytes") || "0", 10);
    var maxMb = form.getAttribute("data-max-mb") || "";
    var sent = false;

    function show() {
      if (!input || !shown) { return; }
      if (input.files && input.files.length) {
        var s = fileSummary(input.files[0], maxBytes, maxMb);
        shown.textContent = s.text;
        shown.className = "dz-file" + (s.bad ? " too-big" : "");
      } else {
        shown.textContent = "";
      }
    }
    if (input) {
      input.addEventListener("change", show);
      show();
    }
    if (input && zone) {
      var depth = 0;
      document.addEventListener("dragenter", function (e) {
        if (e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types || [], "Files") >= 0) {
          depth += 1;
          zone.classList.add("dragging");
        }
      });
      document.addEventListener("dragleave", function () {
        depth = Math.max(0, depth - 1);
        if (!depth) { zone.classList.remove("dragging"); }
      });
      document.addEventListener("dragover", function (e) { e.preventDefault(); });
      document.addEventListener("drop", function (e) {
        e.preventDefault();  // never let the browser open the dropped file instead of the page
        depth = 0;
        zone.classList.remove("dragging");
        if (e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files.length) {
          input.files = e.dataTransfer.files;
          show();
          input.focus();
        }
      });
    }
    form.addEventListener("submit", function (e) {
      if (sent) { e.preventDefault(); return; }
      var submitter = e.submitter;
      var usesFile = !submitter || submitter.value === "file";
      if (usesFile && input && input.files && input.files.length && maxBytes && input.files[0].size > maxBytes) {
        e.preventDefault();
        show();
        input.focus();
        return;
      }
      sent = true;
      form.setAttribute("aria-busy", "true");
      if (busy) {
        busy.textContent = usesFile ? "Checking… this takes a few seconds." : "Connecting to the pump…";
        busy.hidden = false;
      }
    });
    window.addEventListener("pageshow", function () { sent = false; if (busy) { busy.hidden = true; } });
  }

  function setupPrint(button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var imgs = Array.prototype.slice.call(document.querySelectorAll("img"));
      var waiting = imgs.filter(function (img) {
        img.loading = "eager";
        return !img.complete;
      }).map(function (img) {
        return new Promise(function (done) {
          img.addEventListener("load", done, { once: true });
          img.addEventListener("error", done, { once: true });
        });
      });
      button.disabled = true;
      button.textContent = waiting.length ? "Preparing the plots…" : button.textContent;
      Promise.all(waiting).then(function () {
        button.disabled = false;
        button.textContent = "Print (A4)";
        window.print();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("check-form");
    if (form) { setupForm(form); }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
    var print = document.getElementById("print-button");
    if (print) { setupPrint(print); }
  });
})();
