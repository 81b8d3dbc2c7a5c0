import nbformat

import course


def test_lessons_are_found_in_order():
    names = [nb.stem for nb in course.lessons()]
    assert names == sorted(names) and names[0].startswith("01_")


def test_table_lists_each_lesson_with_minutes_and_status():
    results = [course.Result("01_minimax", "cpu", 90.0), course.Result("02_toy_gan", "cpu", 30.0, "boom")]
    lines = course.table(results).splitlines()
    assert lines[0].split() == ["lesson", "profile", "minutes", "status"]
    assert lines[2].split() == ["01_minimax", "cpu", "1.5", "ok"]
    assert lines[3].split() == ["02_toy_gan", "cpu", "0.5", "FAILED"]


def test_figures_are_exported_from_executed_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig")
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "fig"})]
    nb.cells = [cell, nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "lesson.ipynb")
    assert course.export_figures(tmp_path / "lesson.ipynb", tmp_path / "figs") == 1
    assert (tmp_path / "figs" / "cell00_01.png").read_bytes()[:4] == b"\x89PNG"
