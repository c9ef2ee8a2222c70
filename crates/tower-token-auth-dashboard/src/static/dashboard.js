// The dashboard's only script. The page works without it: the token can be
// selected by hand, and Delete then leads to a confirmation page.
"use strict";

// The copy button of the new token (hidden until this script makes it work).
for (const button of document.querySelectorAll("button[data-copy]")) {
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener("click", () => {
    navigator.clipboard.writeText(source.textContent).then(
      () => { button.textContent = "Copied"; },
      () => { button.textContent = "Select and copy it by hand"; });
  });
}

// Delete asks in a modal <dialog> on the page instead of on a page of its own.
for (const button of document.querySelectorAll("button[data-dialog]")) {
  const dialog = document.getElementById(button.dataset.dialog);
  if (!dialog || typeof dialog.showModal !== "function") continue;
  button.addEventListener("click", (event) => {
    event.preventDefault();
    dialog.showModal();
  });
}
