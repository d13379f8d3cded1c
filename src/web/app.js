// bookcal's only script: copy buttons. Each button with data-copy="ID" copies the
// value of the input with that id. Without JavaScript the buttons stay hidden and
// the input (read-only, selectable) is there to copy by hand.
"use strict";
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var input = document.getElementById(button.getAttribute("data-copy"));
  if (!input || !navigator.clipboard) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(input.value).then(function () {
      button.textContent = "Copied";
      var status = document.getElementById(button.getAttribute("data-copy") + "-status");
      if (status) {
        status.textContent = "Copied to the clipboard.";
      }
    }, function () {
      input.select();
    });
  });
});
