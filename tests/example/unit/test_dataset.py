"""The dataset the template ships, data/iris.csv, read by the app's own loader (plain Python, no TensorFlow)."""

from collections import Counter

from app import dataset
from helpers.project import PROJECT_DIR


def test_the_shipped_dataset_is_fishers_iris():
    data = dataset.load(PROJECT_DIR / "data" / "iris.csv")
    assert data.classes == ("setosa", "versicolor", "virginica")
    assert Counter(data.labels) == {0: 50, 1: 50, 2: 50}
    assert all(len(row) == len(dataset.FEATURES) == 4 for row in data.features)
    means = [round(sum(column) / len(column), 3) for column in zip(*data.features, strict=True)]
    assert means == [5.843, 3.057, 3.758, 1.199], (
        "the published means of Fisher's data (as in R and scikit-learn)"
    )


def test_the_held_out_split_keeps_a_fifth_of_each_species():
    data = dataset.load(PROJECT_DIR / "data" / "iris.csv")
    train_rows, test_rows = dataset.split(data, 0.2, seed=42)
    assert (len(train_rows), len(test_rows)) == (120, 30)
    assert Counter(data.labels[row] for row in test_rows) == {0: 10, 1: 10, 2: 10}
