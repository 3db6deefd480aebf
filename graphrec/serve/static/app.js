// graphrec pages: small conveniences on top of plain HTML forms (everything works without it).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // apply a filter as soon as it changes
  for (const form of document.querySelectorAll("form.filters")) {
    form.classList.add("live");
    form.addEventListener("change", () => form.submit());
  }
  // refuse a too-large photo before sending it, and say why
  for (const input of document.querySelectorAll("form input[type=file][data-max-bytes]")) {
    input.addEventListener("change", () => {
      const file = input.files[0];
      const limit = Number(input.dataset.maxBytes);
      input.setCustomValidity(file && file.size > limit ? `This photo is larger than ${Math.round(limit / 1048576)} MB.` : "");
      input.reportValidity();
    });
  }
  // a product image that fails to load becomes a plain "no image" tile
  const placeholder = (img) => {
    const box = img.parentElement;
    box.classList.add("none");
    box.textContent = "no image";
  };
  for (const img of document.querySelectorAll(".thumb img, .hero img")) {
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("loading") !== "lazy") placeholder(img);
    else img.addEventListener("error", () => placeholder(img));
  }
});
