"""Write a CIFAR10Data to disk as train/<class>/*.png, test/<class>/*.png (the image-folder source)."""

from pathlib import Path

from PIL import Image


def write_image_folders(data, root: Path) -> Path:
    splits = {"train": (data.full_train()), "test": (data.test_images, data.test_labels)}
    for split, (images, labels) in splits.items():
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / data.classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    return root
