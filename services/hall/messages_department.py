"""Messages of the department page (部门管理): Chinese, English (i18n.py merges them)."""

DEPARTMENT: dict[str, tuple[str, str]] = {
    "nav.department": ("部门管理", "My department"),
    "dept.title": ("部门管理", "My department"),
    "dept.pick": ("选择部门", "Choose a department"),
    "dept.open": ("打开", "Open"),
    "dept.users": ("部门用户", "Users of the department"),
    "dept.user": ("用户", "User"),
    "dept.role": ("角色", "Role"),
    "dept.representative": ("首席代表", "Chief representative"),
    "dept.add_user": ("新增用户", "Add a user"),
    "dept.name": ("名称", "Name"),
    "dept.add": ("新增", "Add"),
    "dept.remove": ("删除", "Remove"),
    "dept.rotate": ("轮换", "Rotate"),
    "dept.accounts": ("系统账号（Kafka）", "System accounts (Kafka)"),
    "dept.principal": ("主体", "Principal"),
    "dept.generation": ("密码代次", "Password generation"),
    "dept.add_account": ("新增系统账号", "Add a system account"),
    "dept.token_once": (
        "新令牌仅显示这一次，请立即交给用户：",
        "The new token is shown this once; hand it to the user now:",
    ),
    "dept.password_once": (
        "新密码仅显示这一次，请立即配置到系统：",
        "The new password is shown this once; configure the system with it now:",
    ),
    "dept.pending_sync": (
        "已记录；Kafka 账号同步后生效。",
        "Recorded; it takes effect once the Kafka accounts are synchronised.",
    ),
    "dept.removed": ("已删除：", "Removed:"),
    "dept.oversight": ("首席代表近期操作", "Recent actions of the representatives"),
    "dept.at": ("时间", "At"),
    "dept.actor": ("操作人", "By"),
    "dept.action": ("操作", "Action"),
    "dept.object": ("对象", "Object"),
    "dept.none": ("暂无", "None yet"),
}
DEPT_ZH = {key: zh for key, (zh, _) in DEPARTMENT.items()}
DEPT_EN = {key: en for key, (_, en) in DEPARTMENT.items()}
